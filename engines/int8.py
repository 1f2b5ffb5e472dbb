"""``run_line.py quantize``: an INT8 copy of the inference graph for CPU hosts, kept only if it judges as well.

ONNX Runtime's static quantization (QDQ: QuantizeLinear/DequantizeLinear pairs around the convolutions, weights
per channel, activation ranges calibrated on good frames of the product). Only the convolutions are quantized:
the uint8 casts, sigmoid, ROI, smoothing and the normal level stay float32, so the graph's contract (docs/design.md
3.5) is unchanged. Both CPU runtimes read a QDQ graph: ONNX Runtime runs integer convolutions (VNNI/AMX-INT8 in
MLAS), OpenVINO turns the pairs into its own INT8 kernels.

The gate is accuracy, not parity (INT8 maps differ from FP32 by far more than 1e-3): on the dataset's labelled test
split, scored inside the checkpoint's ROI prior as the line scores, the INT8 graph's image AUROC may be at most
``MAX_AUROC_DROP`` below the FP32 graph's, with the same images rejected at the checkpoint's threshold reported
beside it. A graph that fails is not written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from engines.base import EngineError
from engines.sidecar import OnnxMeta, read_onnx_sidecar, sha256_file, sidecar_path, write_atomically

MAX_AUROC_DROP = 0.005
QUANTIZED_OPS = ["Conv", "ConvTranspose"]


def int8_path(onnx_path: Path) -> Path:
    """Where the INT8 graph of a cached FP32 graph lives: beside it."""
    return Path(onnx_path).with_name(Path(onnx_path).stem + ".int8.onnx")


def roi_batch(roi: np.ndarray, n: int) -> np.ndarray:
    """One static ``[S, S]`` ROI as the graph's ``[n, S, S]`` input."""
    return np.ascontiguousarray(np.broadcast_to(roi, (n, *roi.shape)))


class FrameReader:
    """ONNX Runtime's CalibrationDataReader interface over good frames, a few at a time."""

    def __init__(self, frames: np.ndarray, roi: np.ndarray, batch: int = 4) -> None:
        self.batches = [
            {"frames": np.ascontiguousarray(f), "roi": roi_batch(roi, len(f))}
            for f in (frames[i : i + batch] for i in range(0, len(frames), batch))
        ]

    def get_next(self) -> dict | None:
        return self.batches.pop(0) if self.batches else None

    def rewind(self) -> None:  # not needed by MinMax calibration; part of the interface
        pass


def quantize_graph(onnx_path: Path, out: Path, good_frames: np.ndarray, roi: np.ndarray, log=print) -> Path:
    """Write the QDQ INT8 graph of ``onnx_path`` to ``out`` (no sidecar yet: the gate writes it)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    read_onnx_sidecar(onnx_path)  # integrity first
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_out = Path(tmp) / out.name
        quantize_static(
            str(onnx_path),
            str(tmp_out),
            FrameReader(good_frames, roi),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        os.replace(tmp_out, out)
    log(f"quantized {onnx_path.name} -> {out} on {len(good_frames)} good frames")
    return out


def image_auroc_of(engine, frames: np.ndarray, roi: np.ndarray, labels: np.ndarray, batch: int = 8) -> tuple:
    """(image AUROC, scores) of one engine on labelled frames."""
    from model.metrics import image_auroc

    scores = []
    for i in range(0, len(frames), batch):
        f = frames[i : i + batch]
        scores.append(engine.infer(f, roi_batch(roi, len(f)), False)[0])
    s = np.concatenate(scores)
    return image_auroc(labels, s), s


def quantize_checkpoint(
    checkpoint: Path, data_dir: Path, eval_dir: Path, cache_dir: Path, calibration_images: int = 64, log=print
):
    """Quantize the checkpoint's cached graph, calibrated on ``data_dir/train/good`` and gated on ``eval_dir``'s
    test split (a render or recording training never saw); returns the INT8 graph's sidecar. Raises EngineError
    (nothing written) when the INT8 graph loses more than ``MAX_AUROC_DROP`` of image AUROC."""
    from engines.ort_engine import OnnxRuntimeEngine
    from engines.select import ensure_onnx
    from model.checkpoint import read_meta
    from model.dataset import index_split, read_image

    meta = read_meta(checkpoint)
    size, ch = meta.image_size, meta.channels
    onnx_path = ensure_onnx(checkpoint, cache_dir, 1, log)
    prior = meta.roi_prior()
    roi = np.where(prior, 255, 0).astype(np.uint8) if prior is not None else np.full((size, size), 255, np.uint8)
    good = index_split(Path(data_dir), "train")
    if not good:
        raise EngineError(f"{data_dir}/train/good: no good images to calibrate the INT8 graph on")
    pick = np.linspace(0, len(good) - 1, min(calibration_images, len(good))).round().astype(int)
    calib = np.stack([read_image(good[i].path, size, ch) for i in sorted(set(pick))])
    test = index_split(Path(eval_dir), "test", use_roi=False)
    labels = np.array([0 if s.label == "good" else 1 for s in test])
    if len(set(labels)) < 2:
        raise EngineError(f"{eval_dir}/test: the INT8 gate needs good and defective test images")
    frames = np.stack([read_image(s.path, size, ch) for s in test])
    out = int8_path(onnx_path)
    candidate = out.with_name(out.name + ".candidate")
    quantize_graph(onnx_path, candidate, calib, roi, log)
    fp32_meta = read_onnx_sidecar(onnx_path)
    fp32_auroc, fp32_scores = image_auroc_of(OnnxRuntimeEngine(onnx_path), frames, roi, labels)
    int8_meta = fp32_meta.model_copy(update={"precision": "int8", "sha256": sha256_file(candidate), "parity": {}})
    write_atomically(sidecar_path(candidate), int8_meta.model_dump_json(indent=1).encode())
    int8_auroc, int8_scores = image_auroc_of(OnnxRuntimeEngine(candidate), frames, roi, labels)
    thr = fp32_meta.threshold
    accuracy = {
        "image_auroc_fp32": round(fp32_auroc, 6),
        "image_auroc_int8": round(int8_auroc, 6),
        "auroc_drop": round(fp32_auroc - int8_auroc, 6),
        "verdicts_equal_share": float(((fp32_scores > thr) == (int8_scores > thr)).mean()),
        "max_score_delta": float(np.abs(fp32_scores - int8_scores).max()),
        "n_test": len(frames),
        "n_calibration": len(calib),
        "calibration_data": str(data_dir),
        "eval_data": str(eval_dir),
    }
    log(
        f"INT8 gate on {len(frames)} test images of {eval_dir}: image AUROC {fp32_auroc:.4f} (FP32) -> "
        f"{int8_auroc:.4f} (INT8), same verdict on {accuracy['verdicts_equal_share']:.1%}"
    )
    if fp32_auroc - int8_auroc > MAX_AUROC_DROP:
        for p in (candidate, sidecar_path(candidate)):
            p.unlink(missing_ok=True)
        raise EngineError(
            f"INT8 graph not written: image AUROC drops by {fp32_auroc - int8_auroc:.4f} (limit {MAX_AUROC_DROP})"
        )
    int8_meta = int8_meta.model_copy(update={"accuracy": accuracy})
    os.replace(candidate, out)
    write_atomically(sidecar_path(out), int8_meta.model_dump_json(indent=1).encode())
    sidecar_path(candidate).unlink(missing_ok=True)
    return int8_meta


def read_int8_sidecar(path: Path) -> OnnxMeta:
    """The INT8 graph's sidecar; refused unless it passed the accuracy gate."""
    if not Path(path).is_file():
        raise EngineError(f"{path}: no INT8 graph for this checkpoint; run `run_line.py quantize` first")
    meta = read_onnx_sidecar(path)
    if meta.precision != "int8" or not meta.accuracy:
        raise EngineError(f"{path}: not an INT8 graph that passed the accuracy gate; run `run_line.py quantize`")
    return meta


def int8_ready(onnx_path: Path) -> bool:
    """Whether ``quantize`` left a gated INT8 graph beside this FP32 graph."""
    try:
        read_int8_sidecar(int8_path(onnx_path))
        return True
    except EngineError:
        return False
