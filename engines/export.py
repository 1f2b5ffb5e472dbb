"""``run_line.py export``: checkpoint -> ONNX inference graph, verified against PyTorch before it is written."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.graph import INPUT_NAMES, OUTPUT_NAMES, InferenceGraph
from engines.sidecar import OnnxMeta, sha256_file, sidecar_path, write_atomically
from model.checkpoint import load_checkpoint
from model.errors import InputError
from model.vials import render_vial_frame

PARITY_LIMIT = 1e-3
OPSET = 18


@dataclass
class Parity:
    max_score_delta: float
    max_map_delta: float
    verdicts_equal: bool

    @property
    def worst(self) -> float:
        return max(self.max_score_delta, self.max_map_delta)

    def passes(self) -> bool:
        """The gate every compiled graph meets: within ``PARITY_LIMIT`` and the same verdicts."""
        return self.worst <= PARITY_LIMIT and self.verdicts_equal


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs optional-dependency notes (no torchvision) and deprecation warnings that bury
    the parity figures; silence them for the export call only."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def parity_frames(size: int, channels: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """Half random noise, half rendered vial frames (one with a defect), uint8 ``[n, size, size, C]``."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (size, size, channels), dtype=np.uint8) for _ in range(n // 2)]
    for i in range(n - n // 2):
        img = render_vial_frame(rng, 256, "dark_spot" if i % 2 else None).image
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(img if channels == 3 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None])
    return np.stack(frames)


def compare(reference, candidate, frames: np.ndarray, threshold: float) -> Parity:
    """Max |delta| of scores and maps between two engines (or callables) on the same frames."""
    s_ref, m_ref = reference(frames)
    s_new, m_new = candidate(frames)
    return Parity(
        float(np.abs(s_ref - s_new).max()),
        float(np.abs(m_ref - m_new).max()),
        bool(((s_ref > threshold) == (s_new > threshold)).all()),
    )


def export_onnx(checkpoint: Path, out: Path, max_batch: int = 16, fp16: bool = False, log=print) -> OnnxMeta:
    """Export, check ONNX Runtime against PyTorch (refuse above PARITY_LIMIT), then write graph + sidecar.

    ``fp16``: the graph computes in half (for strongly typed TensorRT builds); it is checked against the
    same half-precision PyTorch graph, and its distance to FP32 is reported beside.
    """
    import onnx
    import onnxruntime as ort

    model, meta = load_checkpoint(Path(checkpoint))
    precision = "fp16" if fp16 else "fp32"
    graph = InferenceGraph(model, precision).eval()
    s, c = meta.image_size, meta.channels
    example = (torch.zeros(2, s, s, c, dtype=torch.uint8), torch.full((2, s, s), 255, dtype=torch.uint8))
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), _quiet_exporter():
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: batch}, {0: batch}),
                dynamo=True,
                external_data=False,
                opset_version=OPSET,
                verbose=False,
            )
        onnx.checker.check_model(str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

        def torch_ref(frames: np.ndarray):
            roi = np.full(frames.shape[:3], 255, np.uint8)
            with torch.no_grad():
                sc, mp = graph(torch.from_numpy(frames), torch.from_numpy(roi))
            return sc.numpy(), mp.numpy()

        def ort_run(frames: np.ndarray):
            roi = np.full(frames.shape[:3], 255, np.uint8)
            return tuple(session.run(list(OUTPUT_NAMES), {"frames": frames, "roi": roi}))

        worst = Parity(0.0, 0.0, True)
        for frames in (parity_frames(s, c, 4, 0), parity_frames(s, c, 1, 1)):
            p = compare(torch_ref, ort_run, frames, meta.threshold)
            worst = Parity(
                max(worst.max_score_delta, p.max_score_delta),
                max(worst.max_map_delta, p.max_map_delta),
                worst.verdicts_equal and p.verdicts_equal,
            )
        log(
            f"parity ONNX Runtime vs PyTorch: max |delta score| {worst.max_score_delta:.2e}, "
            f"max |delta map| {worst.max_map_delta:.2e}, verdicts equal: {worst.verdicts_equal}"
        )
        if fp16:
            fp32 = InferenceGraph(load_checkpoint(Path(checkpoint))[0], "fp32").eval()
            frames = parity_frames(s, c, 4, 0)
            roi = torch.full(frames.shape[:3], 255, dtype=torch.uint8)
            with torch.no_grad():
                ref_scores = fp32(torch.from_numpy(frames), roi)[0].numpy()
            half_scores = ort_run(frames)[0]
            log(f"FP16 graph vs FP32 PyTorch: max |delta score| {np.abs(ref_scores - half_scores).max():.2e} (info)")
        if not worst.passes():
            raise InputError(f"{out}: not written: ONNX Runtime differs from PyTorch by more than {PARITY_LIMIT}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    side = OnnxMeta(
        checkpoint_id=meta.id,
        image_size=s,
        channels=c,
        threshold=meta.threshold,
        opset=OPSET,
        precision=precision,
        sha256=sha256_file(out),
        max_batch=max_batch,
        inputs={"frames": f"uint8[B,{s},{s},{c}]", "roi": f"uint8[B,{s},{s}]"},
        outputs={"scores": "float32[B]", "maps": f"float32[B,{s},{s}]"},
        parity={"max_score_delta": worst.max_score_delta, "max_map_delta": worst.max_map_delta},
        torch_version=torch.__version__,
    )
    write_atomically(sidecar_path(out), side.model_dump_json(indent=1).encode())
    return side
