"""Scoring images with a GRD-Net in PyTorch: the reference the engines are checked against."""

from __future__ import annotations

import numpy as np
import torch

from model.dataset import to_tensor
from model.errors import InputError
from model.grdnet import GRDNet, smooth_and_score
from model.train_speed import Precision, step_autocast


@torch.no_grad()
def score_images(
    model: GRDNet,
    images: np.ndarray,
    roi: np.ndarray | None = None,
    batch_size: int = 16,
    precision: Precision = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, H, W, C]`` at the model's size -> (scores ``[N]``, maps ``[N, H, W]``), the maps restricted to
    ``roi`` (bool ``[H, W]`` or ``[N, H, W]``; None: the whole frame) as the inference graph restricts them.

    ``precision`` bf16: the network runs in bfloat16 autocast (self-validation during training, where it halves
    the cost on cores with native bf16); maps and scores are float32 either way. Everything a checkpoint keeps
    (level, threshold) and everything the engines are checked against is scored in fp32."""
    model.eval()
    kernel = model.cfg.inference.smoothing_kernel
    scores, maps = [], []
    for start in range(0, len(images), batch_size):
        with step_autocast(precision):
            m = model.anomaly_map(to_tensor(images[start : start + batch_size])).float()
        if roi is not None:
            r = roi if roi.ndim == 2 else roi[start : start + batch_size]
            m = m * torch.from_numpy(np.ascontiguousarray(r, dtype=np.float32))
        s, _ = smooth_and_score(m, kernel, model.score_level)
        scores.append(s.numpy())
        maps.append(m.numpy())
    return np.concatenate(scores), np.concatenate(maps)


def calibrate_threshold(
    good_scores: np.ndarray, defect_scores: np.ndarray, quantile: float, margin: float, max_escape: float
) -> dict:
    """The operating threshold from held-out good scores and synthetic-defect validation scores together.

    ``t = q + margin * (q - median)`` with ``q`` the good scores' ``quantile`` (1 - target false-reject rate):
    the margin scales with the product's own good-score spread, not a fixed number that suits one score
    scale. It stops at the ``max_escape`` quantile of the defect scores when that lies above ``q``, so the
    margin never passes more validation defects than allowed. Returns the threshold and the figures behind it.
    """
    if len(good_scores) == 0:
        raise InputError("threshold calibration needs at least one held-out good image")
    q = float(np.quantile(good_scores, quantile))
    median = float(np.median(good_scores))
    t = q + margin * max(q - median, 0.0)
    cap = float(np.quantile(defect_scores, max_escape)) if len(defect_scores) else float("inf")
    if cap > q:
        t = min(t, cap)
    return {
        "threshold": t,
        "good_quantile_score": q,
        "good_median_score": median,
        "defect_escape_cap": cap if np.isfinite(cap) else None,
        "val_false_reject_rate": float((good_scores > t).mean()),
        "val_escape_rate": float((defect_scores <= t).mean()) if len(defect_scores) else None,
    }
