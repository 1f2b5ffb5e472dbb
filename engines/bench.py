"""Engine-only benchmark: frames/s and p50/p99 latency per batch size for each available engine, on the
same rendered vial frames, PyTorch eager beside them as the baseline. Prints figures; asserts nothing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engines.base import Engine
from engines.export import parity_frames


def time_engine(
    engine: Engine, frames: np.ndarray, batch: int, min_iters: int = 5, min_seconds: float = 2.0, warmup: int = 2
) -> dict:
    """Latency of ``infer`` (scores and maps back, as the line uses it) on ``batch`` frames."""
    x = frames[:batch]
    for _ in range(warmup):
        engine.infer(x)
    lat = []
    t_end = time.perf_counter() + min_seconds
    while len(lat) < min_iters or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        engine.infer(x)
        lat.append(time.perf_counter() - t0)
    a = np.array(lat)
    return {
        "engine": engine.name,
        "batch": batch,
        "iters": len(a),
        "fps": batch / a.mean(),
        "p50_ms": float(np.percentile(a, 50) * 1e3),
        "p99_ms": float(np.percentile(a, 99) * 1e3),
    }


def bench_engines(engines: list[Engine], batches: list[int], min_seconds: float = 2.0, log=print) -> dict:
    size, ch = engines[0].image_size, engines[0].channels
    frames = parity_frames(size, ch, max(batches), seed=3)
    rows = []
    for engine in engines:
        for b in batches:
            if b > engine.max_batch:
                continue
            row = time_engine(engine, frames, b, min_seconds=min_seconds)
            log(
                f"{row['engine']:>12} batch {b:>2}: {row['fps']:8.1f} frames/s  p50 {row['p50_ms']:8.2f} ms  "
                f"p99 {row['p99_ms']:8.2f} ms"
            )
            rows.append(row)
    best = {}
    for row in rows:
        if row["engine"] not in best or row["fps"] > best[row["engine"]]["fps"]:
            best[row["engine"]] = {"batch": row["batch"], "fps": row["fps"]}
    result = {"rows": rows, "best": best}
    if "torch" in best:
        result["speedup_vs_torch_at_best_batch"] = {k: v["fps"] / best["torch"]["fps"] for k, v in best.items()}
    return result


def open_all(checkpoint: Path, cache_dir: Path, max_batch: int, threads: int | None, log=print) -> list[Engine]:
    """Torch eager, ONNX Runtime, OpenVINO and TensorRT where this machine has them."""
    from engines.int8 import int8_ready
    from engines.openvino_engine import openvino_installed
    from engines.select import detect_kind, open_engine
    from model.checkpoint import read_meta

    kinds = ["torch", "onnxruntime"] + (["openvino"] if openvino_installed() else [])
    kinds += ["tensorrt"] if detect_kind("auto") == "tensorrt" else []
    if int8_ready(Path(cache_dir) / read_meta(checkpoint).id / "model.onnx"):
        kinds += [f"{k}-int8" for k in ("onnxruntime", "openvino") if k in kinds]
    return [open_engine(k, checkpoint, cache_dir, max_batch, threads, log=log) for k in kinds]
