"""The synthetic camera: a product family's renderer as a live camera at a fixed rate and defect rate."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from model.products import get_product
from pipeline.config import SyntheticSource


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
