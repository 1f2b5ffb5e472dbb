"""Where a fixed camera's product lies: the ROI prior learned from the training ROIs.

A station's camera does not move, so the region where defects matter sits in nearly the same pixels of every
frame. The prior is the set of pixels inside the ROI of at least half the training images (what an engineer
would draw as the camera's mask), widened by a few pixels for the product's jitter. The model's image score and
the classical baseline's are both taken inside it, so a lit belt edge or dust on the background never decides a
frame, and the line uses it for a camera whose config names no ROI mask of its own.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from model.errors import InputError

AGREEMENT = 0.5  # a pixel belongs to the prior when at least this share of training ROIs holds it


def fixed_roi(rois: np.ndarray, widen_px: int = 0) -> np.ndarray:
    """``[N, S, S]`` training ROIs in [0, 1] -> bool ``[S, S]``: pixels inside at least half of them, dilated
    by ``widen_px`` (all of the frame when no image has an ROI of its own)."""
    roi = rois.mean(axis=0) >= AGREEMENT
    if widen_px > 0 and not roi.all():
        k = np.ones((2 * widen_px + 1, 2 * widen_px + 1), np.uint8)
        roi = cv2.dilate(roi.astype(np.uint8), k) > 0
    return roi


def encode_mask(mask: np.ndarray) -> str:
    """bool mask -> base64 PNG (255 = inspect), small enough for the checkpoint's JSON metadata."""
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise ValueError("could not encode the ROI prior as PNG")
    return base64.b64encode(png.tobytes()).decode()


def decode_mask(png_b64: str) -> np.ndarray:
    """The inverse of ``encode_mask``: bool ``[S, S]``."""
    img = cv2.imdecode(np.frombuffer(base64.b64decode(png_b64), np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError("the checkpoint's ROI prior is not a readable PNG")
    return img > 127
