"""Scoring images with a GRD-Net in PyTorch: the reference the engines are checked against."""

from __future__ import annotations

import numpy as np
import torch

from model.dataset import to_tensor
from model.grdnet import GRDNet, smooth_and_score


@torch.no_grad()
def score_images(model: GRDNet, images: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, H, W, C]`` at the model's size -> (scores ``[N]``, raw maps ``[N, H, W]``)."""
    model.eval()
    kernel = model.cfg.inference.smoothing_kernel
    scores, maps = [], []
    for start in range(0, len(images), batch_size):
        m = model.anomaly_map(to_tensor(images[start : start + batch_size]))
        s, _ = smooth_and_score(m, kernel)
        scores.append(s.numpy())
        maps.append(m.numpy())
    return np.concatenate(scores), np.concatenate(maps)


def calibrate_threshold(good_scores: np.ndarray, quantile: float, margin: float) -> float:
    """The operating threshold from good images only: ``quantile(scores, q) + margin``; reject if above."""
    if len(good_scores) == 0:
        raise ValueError("threshold calibration needs at least one held-out good image")
    return float(np.quantile(good_scores, quantile) + margin)
