"""The classical peer a machine-vision engineer tries first: no learning, a median filter.

Each channel's absolute deviation from its own median-filtered copy, the largest over channels, and the image
score is its maximum inside the model's ROI prior (model/roi_prior.py: where the training ROIs agree, what one
would draw for a fixed camera). The kernel and the threshold are chosen on the same self-validation set as the
model's (held-out good images and synthetic marks), never on test labels; ``train`` fits it and stores it in
the checkpoint, so ``evaluate --baseline classic`` scores any test set beside the model.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel

from model import metrics
from model.inference import calibrate_threshold
from model.roi_prior import decode_mask, encode_mask
from model.validation import ValidationSet

KERNELS = (3, 5, 7, 9, 11, 15)


class ClassicBaseline(BaseModel):
    kernel: int
    threshold: float
    val_image_auroc: float
    roi_png: str  # base64 PNG of the fixed ROI (255 = inspect)

    def roi(self) -> np.ndarray:
        return decode_mask(self.roi_png)

    def score(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``[N, S, S, C]`` -> (scores ``[N]``, deviation maps in [0, 1] restricted to the ROI)."""
        maps = deviation_maps(frames, self.kernel) * self.roi()
        return maps.reshape(len(maps), -1).max(axis=1), maps


def deviation_maps(frames: np.ndarray, kernel: int) -> np.ndarray:
    """Per pixel: max over channels of |x - median_k(x)|, in [0, 1]."""
    out = np.empty(frames.shape[:3], np.float32)
    for i, f in enumerate(frames):
        med = cv2.medianBlur(np.ascontiguousarray(f), kernel)
        dev = cv2.absdiff(f, med)
        out[i] = (dev.max(axis=2) if dev.ndim == 3 else dev) / 255.0
    return out


def fit_baseline(
    roi: np.ndarray, vs: ValidationSet, quantile: float, margin: float, max_escape: float
) -> ClassicBaseline:
    """The kernel with the best image AUROC on the validation set (the smaller on ties), the threshold by the
    model's own rule (``calibrate_threshold``) on its validation scores; ``roi`` is the model's ROI prior."""
    best: tuple[float, int, np.ndarray] | None = None
    for k in KERNELS:
        scores = (deviation_maps(vs.frames, k) * roi).reshape(len(vs.frames), -1).max(axis=1)
        auroc = metrics.image_auroc(vs.labels, scores)
        if best is None or auroc > best[0]:
            best = (auroc, k, scores)
    assert best is not None
    auroc, k, scores = best
    calib = calibrate_threshold(scores[vs.labels == 0], scores[vs.labels == 1], quantile, margin, max_escape)
    return ClassicBaseline(kernel=k, threshold=calib["threshold"], val_image_auroc=auroc, roi_png=encode_mask(roi))
