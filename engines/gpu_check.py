"""``run_line.py bench --gpu-check DIR``: one command for a GPU host, one JSON and one Markdown report.

It records which engine ``auto`` picks, checks every GPU engine this host can run (PyTorch CUDA in FP32 and at
its gated reduced precision, TensorRT where installed) against ONNX Runtime on the CPU on rendered frames, and
times each by batch (frames/s, p50/p99; TensorRT also with batches overlapped) for the ``cpu`` preset (the
bundled checkpoint) and the ``paper`` preset (its architecture at 256 px with initial weights: speed does not
depend on what the weights learned).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from engines.base import Engine, EngineError
from engines.bench import time_engine
from engines.export import compare, parity_frames

TARGETS = {  # issue 14, on an H100-class GPU, paper preset at 256 px
    "paper batch 1 p99 ms": 3.0,
    "torch-cuda best frames/s": 1000.0,
    "tensorrt fp16 best frames/s": 2000.0,
}


def pipelined_fps(engine, frames, batch: int, seconds: float) -> float:
    """Frames/s with as many batches in flight as the engine has buffer sets (``submit``/``collect``): what the
    overlap of one batch's copies with another's compute buys over ``infer``'s one at a time."""
    from collections import deque

    import numpy as np

    s = engine.image_size
    roi = np.full((batch, s, s), 255, np.uint8)
    pending: deque = deque()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if len(pending) == len(engine.sets):
            engine.collect(pending.popleft())
            done += batch
        pending.append(engine.submit(frames[:batch], roi))
    while pending:
        engine.collect(pending.popleft())
        done += batch
    return done / (time.perf_counter() - t0)


def _paper_checkpoint(out: Path) -> Path:
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.config import load_preset
    from model.grdnet import create_grdnet

    cfg = load_preset("paper")
    cfg.net.image_size = 256
    torch.manual_seed(0)
    model = create_grdnet(cfg).eval()
    meta = CheckpointMeta(config=cfg, threshold=0.5, image_size=256, channels=cfg.net.channels)
    path = out / "paper-init.safetensors"
    save_checkpoint(path, model, meta)
    return path


def _gpu_engines(checkpoint: Path, onnx_path: Path, max_batch: int, log) -> list[tuple[str, Engine]]:
    from engines.select import tensorrt_installed
    from engines.torch_cuda_engine import TorchCudaEngine

    engines: list[tuple[str, Engine]] = [("torch-cuda fp32", TorchCudaEngine(checkpoint, max_batch, "fp32"))]
    gated = TorchCudaEngine(checkpoint, max_batch, "auto")
    engines.append((f"torch-cuda auto ({gated.parity['precision']})", gated))
    if tensorrt_installed():
        from engines.tensorrt_build import build_plan
        from engines.tensorrt_engine import TensorRTEngine

        for fp16 in (False, True):
            plan = onnx_path.with_name(f"check-{'fp16' if fp16 else 'fp32'}.plan")
            build_plan(onnx_path, plan, fp16=fp16, max_batch=max_batch, log=log)
            engines.append((f"tensorrt {'fp16' if fp16 else 'fp32'}", TensorRTEngine(plan)))
    return engines


def run_gpu_check(out: Path, batches: list[int], seconds: float = 1.0, log=print) -> dict:
    from engines.ort_engine import OnnxRuntimeEngine
    from engines.select import detect_kind, ensure_onnx, tensorrt_installed
    from model.checkpoint import BUNDLED_CHECKPOINT, read_meta

    if not torch.cuda.is_available():
        raise EngineError(
            "bench --gpu-check: no CUDA device here (torch.cuda.is_available() is False); run it on the GPU host"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    max_batch = max(batches)
    report: dict = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gpu": torch.cuda.get_device_name(0),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "torch": torch.__version__,
        "tensorrt_installed": tensorrt_installed(),
        "auto_picks": detect_kind("auto"),
        "presets": {},
    }
    for preset, ckpt in (("cpu", BUNDLED_CHECKPOINT), ("paper", _paper_checkpoint(out))):
        meta = read_meta(ckpt)
        onnx_path = ensure_onnx(ckpt, out / "cache", max_batch, log=log)
        reference = OnnxRuntimeEngine(onnx_path, max_batch=max_batch)
        frames = parity_frames(meta.image_size, meta.channels, max_batch, seed=3)
        rows, parity = [], {}
        for label, engine in _gpu_engines(ckpt, onnx_path, max_batch, log):
            p = compare(reference.infer, engine.infer, frames[:8], meta.threshold)
            parity[label] = {"max_score_delta": p.max_score_delta, "max_map_delta": p.max_map_delta}
            parity[label]["verdicts_equal"] = p.verdicts_equal
            log(f"{preset} {label}: parity vs ONNX Runtime CPU {p.max_score_delta:.1e} / {p.max_map_delta:.1e}")
            for b in batches:
                row = {"engine": label, **time_engine(engine, frames, b, min_seconds=seconds)}
                row["engine"] = label
                if hasattr(engine, "submit"):  # TensorRT: also with batches overlapping
                    row["fps_pipelined"] = round(pipelined_fps(engine, frames, b, seconds), 1)
                rows.append(row)
                speed = f"{row['fps']:.0f} frames/s p50 {row['p50_ms']:.2f} p99 {row['p99_ms']:.2f} ms"
                log(f"{preset} {label} batch {b}: {speed}")
            del engine
            torch.cuda.empty_cache()
        report["presets"][preset] = {"checkpoint": meta.id, "parity": parity, "rows": rows}
    report["targets"] = _targets(report)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_check.md").write_text(markdown(report))
    return report


def _targets(report: dict) -> dict:
    rows = report["presets"].get("paper", {}).get("rows", [])

    def best(prefix: str) -> float | None:
        fps = [max(r["fps"], r.get("fps_pipelined", 0)) for r in rows if r["engine"].startswith(prefix)]
        return max(fps) if fps else None

    p99 = [r["p99_ms"] for r in rows if r["batch"] == 1]
    got = {
        "paper batch 1 p99 ms": min(p99) if p99 else None,
        "torch-cuda best frames/s": best("torch-cuda"),
        "tensorrt fp16 best frames/s": best("tensorrt fp16"),
    }
    met = {k: None if v is None else (v <= TARGETS[k] if k.endswith("ms") else v >= TARGETS[k]) for k, v in got.items()}
    return {"target": TARGETS, "measured": got, "met": met}


def markdown(report: dict) -> str:
    lines = [
        f"# GPU check {report['time']}",
        "",
        f"{report['gpu']} (compute {report['capability']}), torch {report['torch']}, "
        f"TensorRT installed: {report['tensorrt_installed']}, auto picks: {report['auto_picks']}",
        "",
    ]
    for preset, r in report["presets"].items():
        lines += [
            f"## {preset} ({r['checkpoint']})",
            "",
            "| engine | parity score / map vs ORT CPU | verdicts |",
            "|---|---|---|",
        ]
        for label, p in r["parity"].items():
            lines.append(f"| {label} | {p['max_score_delta']:.1e} / {p['max_map_delta']:.1e} | {p['verdicts_equal']} |")
        lines += [
            "",
            "| engine | batch | frames/s | frames/s, batches overlapped | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            overlapped = f"{row['fps_pipelined']:.0f}" if "fps_pipelined" in row else "-"
            lines.append(
                f"| {row['engine']} | {row['batch']} | {row['fps']:.0f} | {overlapped} | {row['p50_ms']:.2f} "
                f"| {row['p99_ms']:.2f} |"
            )
        lines.append("")
    t = report["targets"]
    lines += ["## Targets (paper preset)", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for k, want in t["target"].items():
        got = t["measured"][k]
        lines.append(f"| {k} | {want:g} | {'-' if got is None else f'{got:.2f}'} | {t['met'][k]} |")
    return "\n".join(lines) + "\n"
