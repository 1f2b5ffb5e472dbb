"""What an engine can judge per second, measured where it runs, and the carousel rate check built on it.

A carousel turning faster than its workers can judge ejects every unit for lateness once the queues fill;
the config alone cannot know that. Each worker times its own engine at start-up (the same process, threads
and batch it will run with, so the figure includes whatever shares the host) and the supervisor refuses to
start the cameras when the stations need more frames a second than the workers measured.
"""

from __future__ import annotations

import time

import numpy as np

from engines.base import Engine
from model.errors import GrdnetError


def blank_batch(engine: Engine, b: int) -> tuple[np.ndarray, np.ndarray]:
    """``b`` black frames at the engine's size with an all-inspect ROI: convolutions cost the same whatever the
    pixels, so timing and warming need no real frames."""
    s, c = engine.image_size, engine.channels
    return np.zeros((b, s, s, c), np.uint8), np.full((b, s, s), 255, np.uint8)


def measure_frames_per_s(engine: Engine, batch: int, min_seconds: float = 1.0, min_batches: int = 3) -> float:
    """Frames a second of ``engine`` at ``batch``: one warm-up batch, then whole batches for at least
    ``min_seconds`` and ``min_batches`` (convolutions cost the same whatever the pixels: zeros will do)."""
    b = max(1, min(batch, engine.max_batch))
    frames, roi = blank_batch(engine, b)
    engine.infer(frames, roi)
    n, t0 = 0, time.perf_counter()
    while n < min_batches or time.perf_counter() - t0 < min_seconds:
        engine.infer(frames, roi)
        n += 1
    return n * b / (time.perf_counter() - t0)


def warm_up(engine: Engine, max_batch: int) -> float:
    """Run one batch of every size the worker can form (1..``max_batch``) before the first frame; returns the
    seconds it took. OpenVINO compiles an input shape on its first use (measured on the bundled model: +140-190
    ms per batch size on the INT8 graph, +20-80 ms in FP32) and CUDA graphs are captured on first use, so without
    this a fresh or restarted worker judges its first batch of each size late, just when the line recovers."""
    t0 = time.perf_counter()
    for b in range(1, min(max_batch, engine.max_batch) + 1):
        engine.infer(*blank_batch(engine, b))
    return time.perf_counter() - t0


class CapacityError(GrdnetError, RuntimeError):
    """The configured carousel needs more frames a second than the workers measured."""


def check_carousel_rate(
    units_per_minute: float, stations: int, worker_frames_per_s: list[float], max_load: float
) -> str:
    """One line on what the carousel needs and what the workers measured; CapacityError when the need exceeds
    ``max_load`` of the measured total (queues and batching need headroom: past it units go late)."""
    need = units_per_minute / 60.0 * stations
    have = sum(worker_frames_per_s)
    figures = ", ".join(f"{f:.1f}" for f in worker_frames_per_s)
    line = (
        f"carousel: {units_per_minute:g} units/min x {stations} stations needs {need:.1f} frames/s; "
        f"the workers measured {have:.1f} frames/s ({figures})"
    )
    if need > max_load * have:
        raise CapacityError(
            f"{line}, and the line runs them at most at {max_load:.0%}: slow the carousel to "
            f"{max_load * have * 60 / stations:.0f} units/min or less, or add workers"
        )
    return line
