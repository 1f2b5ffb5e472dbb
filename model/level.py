"""The normal level: what the smoothed anomaly map reaches on good frames, pixel by pixel.

A fixed camera sees the same product in nearly the same place, and a map trained for a few hundred steps
lights the same normal structures on every good frame (an ampoule's outline, a meniscus, a moulding seam). Its
maximum then decides good frames as much as defects. Taking, per pixel, the highest smoothed value over good
training frames (widened by a few pixels for the product's jitter) and scoring a frame by its largest excess
over that level lets a mark of any size count where good frames are quiet. Measured on the dev renders
(bundled vials model, ampoule seed 0; docs/results.md): image AUROC 0.90 -> 0.92 (vials), 0.69 -> 0.85
(ampoule). The level is built from training frames, never the held-out ones that calibrate the threshold.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model.grdnet import smooth_and_score


def level_indices(n: int, count: int) -> np.ndarray:
    """Evenly spaced indices of ``count`` of ``n`` training frames (all when fewer): a fixed choice per run."""
    if n <= count:
        return np.arange(n)
    return np.linspace(0, n - 1, count).round().astype(int)


def normal_level(good_maps: np.ndarray, kernel: int, widen_px: int) -> np.ndarray:
    """``[N, S, S]`` ROI-restricted maps of good frames -> float32 ``[S, S]``: per pixel the max of the
    ``kernel``-smoothed maps, dilated by ``widen_px``."""
    _, smoothed = smooth_and_score(torch.from_numpy(np.ascontiguousarray(good_maps, dtype=np.float32)), kernel)
    top = smoothed.amax(dim=0).numpy()
    if widen_px > 0:
        top = cv2.dilate(top, np.ones((2 * widen_px + 1, 2 * widen_px + 1), np.uint8))
    return top.astype(np.float32)
