"""Per-camera preparation of frames for the model: crop, resize, channel count; the static ROI mask."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.errors import InputError
from pipeline.config import CameraConfig


class CameraPrep:
    """``roi_prior``: the checkpoint's ROI prior (bool, model size), the mask of a camera that names none; a
    camera's own ``roi_mask`` replaces it, and with neither the whole frame is inspected."""

    def __init__(self, cam: CameraConfig | None, size: int, channels: int, roi_prior: np.ndarray | None = None) -> None:
        self.size, self.channels = size, channels
        self.crop = cam.crop if cam else None
        self.roi = np.full((size, size), 255, np.uint8)
        if roi_prior is not None and roi_prior.shape == (size, size) and (cam is None or cam.roi_prior):
            self.roi = np.where(roi_prior, 255, 0).astype(np.uint8)
        if cam and cam.roi_mask:
            mask = cv2.imread(cam.roi_mask, cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise InputError(f"{Path(cam.roi_mask)}: unreadable ROI mask for camera {cam.name}")
            if self.crop:
                x, y, w, h = self.crop
                mask = mask[y : y + h, x : x + w]
            self.roi = np.where(cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST) > 127, 255, 0).astype(
                np.uint8
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 HxW or HxWxC (C in 1, 3, 4) -> uint8 ``size x size x channels``; ValueError when it cannot."""
        img = pixels
        if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
            raise InputError(f"{img.shape[2]} channels; expected 1, 3 or 4")
        if self.crop:
            x, y, w, h = self.crop
            if y + h > img.shape[0] or x + w > img.shape[1]:
                raise InputError(f"crop {list(self.crop)} outside a {img.shape[1]}x{img.shape[0]} frame")
            img = img[y : y + h, x : x + w]
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.shape[:2] != (self.size, self.size):
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if self.channels == 3 and img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        elif self.channels == 1 and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return img.reshape(self.size, self.size, self.channels)
