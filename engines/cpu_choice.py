"""``auto`` on a CPU host: the fastest CPU engine for this graph, host, thread count and batch.

ONNX Runtime and OpenVINO run the same graph through different kernels, and which is faster depends on the CPU
(AVX2 vs AVX-512, cache sizes) and the batch, so it is measured, not assumed: each candidate that matches ONNX
Runtime within the export's parity limit on the same frames is timed at the line's batch, and the choice is
recorded beside the graph so later starts on the same host reuse it without timing again.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from engines.base import Engine
from engines.capacity import measure_frames_per_s
from engines.export import PARITY_LIMIT
from engines.sidecar import write_atomically

RECORD = "cpu_engines.json"


def host_key(threads: int | None, max_batch: int, candidates: list[str] | None = None) -> str:
    """What the measurement depends on: processor, cores, threads, batch, the runtimes' versions (OpenVINO's with
    its streams) and the candidates (an INT8 graph made later is a new choice)."""
    import onnxruntime

    try:
        import openvino

        from engines.openvino_engine import default_streams

        # the streams a batch is split over decide OpenVINO's speed: a choice timed with one request is not reused
        ov_version = f"{openvino.__version__.split('-')[0]},streams={default_streams(threads, max_batch)}"
    except ImportError:
        ov_version = "none"
    cpu = platform.processor() or platform.machine()
    runtimes = f"ort={onnxruntime.__version__}|ov={ov_version}"
    key = f"{cpu}|cores={os.cpu_count()}|threads={threads}|batch={max_batch}|{runtimes}"
    return key + (f"|{','.join(sorted(candidates))}" if candidates else "")


def agrees(reference: Engine, other: Engine, batch: int, seed: int = 0) -> bool:
    """``other`` gives ``reference``'s scores and maps within PARITY_LIMIT on the same random frames."""
    b = max(1, min(batch, reference.max_batch, other.max_batch))
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (b, reference.image_size, reference.image_size, reference.channels), np.uint8)
    s0, m0 = reference.infer(frames)
    s1, m1 = other.infer(frames)
    return bool(np.abs(s0 - s1).max() <= PARITY_LIMIT and np.abs(m0 - m1).max() <= PARITY_LIMIT)


def choose_cpu_engine(
    candidates: dict[str, Engine], onnx_path: Path, threads: int | None, max_batch: int, log=print
) -> str:
    """The name of the fastest candidate that agrees with ``candidates["onnxruntime"]``; the figures are read
    from (or written to) ``RECORD`` beside ``onnx_path``."""
    record_path = Path(onnx_path).parent / RECORD
    key = host_key(threads, max_batch, list(candidates))
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    entry = record.get(key)
    if entry and entry.get("chosen") in candidates:
        return entry["chosen"]
    reference = candidates["onnxruntime"]
    figures: dict[str, float | None] = {}
    for name, engine in candidates.items():
        # INT8 graphs passed an accuracy gate when made (engines/int8.py); they cannot meet the FP32 parity limit
        if name != "onnxruntime" and not name.endswith("-int8") and not agrees(reference, engine, max_batch):
            log(f"engine {name} differs from ONNX Runtime by more than {PARITY_LIMIT}: not used")
            figures[name] = None
            continue
        figures[name] = round(measure_frames_per_s(engine, max_batch), 2)
    chosen = max((n for n, f in figures.items() if f is not None), key=lambda n: figures[n])
    measured = ", ".join(f"{n} {f} frames/s" for n, f in figures.items())
    log(f"CPU engines at batch {max_batch}: {measured} -> {chosen}")
    record[key] = {"frames_per_s": figures, "chosen": chosen}
    write_atomically(record_path, json.dumps(record, indent=1).encode())
    return chosen
