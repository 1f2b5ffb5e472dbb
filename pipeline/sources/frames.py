"""What a source yields, and the pixel conversions from camera formats to what the model takes."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.errors import InputError


@dataclass
class SourceFrame:
    pixels: np.ndarray  # uint8 HxW (mono) or HxWx3 (RGB), owned by the receiver (never a camera buffer)
    t_acq_ns: int
    camera: str | None = None  # replayed streams keep their recorded identity
    frame_id: int | None = None
    slot: int | None = None
    trigger: int | None = None  # the encoder tick the source reports (carousel lines)
    device_seq: int | None = None  # the camera's own frame counter (GenICam), where it has one


# OpenCV names Bayer patterns by the second row: a GenICam RGGB sensor (BayerRG) is OpenCV's BayerBG.
_BAYER = {
    "BayerRG8": cv2.COLOR_BayerBG2RGB,
    "BayerBG8": cv2.COLOR_BayerRG2RGB,
    "BayerGR8": cv2.COLOR_BayerGB2RGB,
    "BayerGB8": cv2.COLOR_BayerGR2RGB,
}
SUPPORTED_FORMATS = ("Mono8", "RGB8", "BGR8", "RGBa8", "BGRa8", *_BAYER)


def to_model_pixels(data: np.ndarray, pixel_format: str, height: int, width: int) -> np.ndarray:
    """A camera buffer (flat uint8) -> an owned uint8 image: Mono8 HxW, colour formats HxWx3 RGB."""
    if pixel_format == "Mono8":
        return data.reshape(height, width).copy()
    if pixel_format in _BAYER:
        return cv2.cvtColor(data.reshape(height, width), _BAYER[pixel_format])
    if pixel_format in ("RGB8", "BGR8"):
        img = data.reshape(height, width, 3)
        return img[..., ::-1].copy() if pixel_format == "BGR8" else img.copy()
    if pixel_format in ("RGBa8", "BGRa8"):
        img = data.reshape(height, width, 4)[..., :3]
        return np.ascontiguousarray(img[..., ::-1] if pixel_format == "BGRa8" else img)
    raise InputError(f"pixel format {pixel_format!r} not supported; one of {', '.join(SUPPORTED_FORMATS)}")
