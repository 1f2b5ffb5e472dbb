"""Evaluation metrics of docs/design.md 3.6, as pure functions of scores, maps and masks (sklearn underneath)."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score, roc_curve


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """labels: 1 = defective. NaN when only one class is present."""
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    gt = masks.reshape(-1) > 0.5
    return float(roc_auc_score(gt, maps.reshape(-1))) if 0 < gt.sum() < gt.size else float("nan")


def f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all thresholds (image level)."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    precision, recall, _ = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, normalised to [0, 1] (MVTec AD).

    Regions are the connected components of each ground-truth mask (OpenCV); PRO(t) is the mean over
    regions of the share of the region above t; thresholds are chosen so the FPR steps evenly to the limit.
    """
    gt = masks > 0.5
    negatives = np.sort(maps[~gt])
    regions = []
    for m, g in zip(maps, gt, strict=True):
        n, labels = cv2.connectedComponents(g.astype(np.uint8), connectivity=8)
        regions += [np.sort(m[labels == k]) for k in range(1, n)]
    if not regions or negatives.size == 0:
        return float("nan")
    thresholds = np.unique(np.quantile(negatives, 1 - np.linspace(0, fpr_limit, steps)))
    fpr = 1 - np.searchsorted(negatives, thresholds, side="right") / negatives.size
    pro = np.mean([1 - np.searchsorted(r, thresholds, side="right") / r.size for r in regions], axis=0)
    # the curve's ends: threshold above everything (0, 0) and below everything (1, 1); ties in the
    # background make many thresholds share one FPR, so sort by FPR then PRO and interpolate at the limit
    fpr = np.concatenate([[0.0], fpr, [1.0]])
    pro = np.concatenate([[0.0], pro, [1.0]])
    order = np.lexsort((pro, fpr))
    fpr, pro = fpr[order], pro[order]
    at_limit = float(np.interp(fpr_limit, fpr, pro))
    keep = fpr < fpr_limit
    x = np.concatenate([fpr[keep], [fpr_limit]])
    y = np.concatenate([pro[keep], [at_limit]])
    return float(auc(x, y) / fpr_limit)


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Reject = score > threshold. Accuracy, false-reject rate (good rejected), escape rate (bad passed)."""
    reject = scores > threshold
    good, bad = labels == 0, labels == 1
    return {
        "accuracy": float((reject == bad).mean()),
        "false_reject_rate": float(reject[good].mean()) if good.any() else float("nan"),
        "escape_rate": float((~reject[bad]).mean()) if bad.any() else float("nan"),
    }


def best_escape_at(labels: np.ndarray, scores: np.ndarray, max_false_reject: float) -> float:
    """The lowest escape rate any threshold reaches while rejecting at most ``max_false_reject`` of the good
    images: what the scores allow at that false-reject rate, whatever rule sets the threshold. NaN with one class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(1 - tpr[fpr <= max_false_reject + 1e-12].max())
