"""The synthetic camera: a product family's renderer as a live camera at a fixed rate and defect rate."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from model.products import get_product
from pipeline.config import SyntheticSource
from pipeline.sources.frames import SourceFrame
from pipeline.units import Timeline


def _render(cfg: SyntheticSource, camera_index: int, i: int) -> np.ndarray:
    rng = np.random.default_rng([cfg.seed, camera_index, i])
    product = get_product(cfg.product)
    defect = str(rng.choice(product.defects)) if rng.random() < cfg.defect_rate else None
    return product.render(rng, cfg.size, defect, "inside").image


def synthetic_frames(cfg: SyntheticSource, fps: float, camera_index: int = 0) -> Iterator[tuple[np.ndarray, int]]:
    """Endless frames paced at ``fps`` on an absolute schedule (no drift); a defect in ``defect_rate`` of them."""
    period_ns = int(1e9 / fps)
    pool = [_render(cfg, camera_index, i) for i in range(cfg.pool)]
    t_next = time.monotonic_ns()
    i = 0
    while True:
        frame = pool[i % len(pool)].copy() if pool else _render(cfg, camera_index, i)
        t_next += period_ns
        delay = t_next - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        else:
            t_next = time.monotonic_ns()  # fell behind: do not burst to catch up
        yield frame, time.time_ns()
        i += 1


def triggered_frames(cfg: SyntheticSource, timeline: Timeline, camera_index: int = 0) -> Iterator[SourceFrame]:
    """A camera on the carousel: one frame per encoder tick, stamped with the tick (its trigger identity) and
    exposed at the tick's time. ``trigger_drop_rate`` of the ticks are missed and ``trigger_repeat_rate`` are
    seen twice (seeded), so slot integrity is tested end to end. Like a hardware-triggered camera, it holds
    ``trigger_buffers`` exposed frames for a host process that fetches late (a loaded machine delays the fetch,
    not the exposure: such frames arrive late and are judged late, not missing); a host further behind than
    that loses the oldest triggers, as a camera whose buffers overflowed does."""
    pool = [_render(cfg, camera_index, i) for i in range(cfg.pool)]
    k = max(0, timeline.tick_at(time.time_ns()) + 1)
    rng = np.random.default_rng([cfg.seed, camera_index, 7919, k])
    while True:
        t_k = timeline.t0_ns + k * timeline.period_ns
        delay = t_k - time.time_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        elif -delay > cfg.trigger_buffers * timeline.period_ns:  # the buffers overflowed: the oldest are gone
            k = max(k + 1, timeline.tick_at(time.time_ns()) - cfg.trigger_buffers + 1)
            continue
        if rng.random() < cfg.trigger_drop_rate:
            k += 1
            continue
        frame = pool[k % len(pool)].copy() if pool else _render(cfg, camera_index, k)
        yield SourceFrame(frame, t_k, trigger=k)  # acquired at its trigger, however late it is fetched
        if rng.random() < cfg.trigger_repeat_rate:
            yield SourceFrame(frame.copy(), t_k, trigger=k)
        k += 1
