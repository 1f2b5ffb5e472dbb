"""Drawing primitives shared by the synthetic products: the frame record, smooth fields, and small marks at
native resolution (specks, particles, cracks) as anti-aliased opacity masks. Pure functions of an rng."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Placement = Literal["inside", "outside"]


@dataclass
class ProductFrame:
    image: np.ndarray  # HxWx3 uint8, RGB
    roi: np.ndarray  # HxW uint8, 255 = where defects matter
    defect_mask: np.ndarray  # HxW uint8, 255 = defect pixels (inside or outside the ROI)


def smooth_field(rng: np.random.Generator, size: int, cells: int, amp: float) -> np.ndarray:
    """A low-frequency random field (bicubic upsampling of ``cells x cells`` normal noise) times ``amp``."""
    coarse = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * amp


def pick_point(region: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        raise ValueError("no room to place a mark: the region is empty")
    i = int(rng.integers(len(ys)))
    return float(xs[i]), float(ys[i])


def speck(size: int, centre: tuple[float, float], radius: float, rng: np.random.Generator) -> np.ndarray:
    """A small, slightly elliptical dot (radius in px, 1-3 for a 2-6 px speck)."""
    m = np.zeros((size, size), np.float32)
    scale = 16  # sub-pixel drawing: cv2 shifts coordinates by 4 bits
    axes = (max(1, int(radius * scale)), max(1, int(radius * rng.uniform(0.6, 1.0) * scale)))
    c = (int(centre[0] * scale), int(centre[1] * scale))
    cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA, shift=4)
    return m


def particle(size: int, centre: tuple[float, float], extent: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular clump: 3-7 overlapping tiny dots within ``extent`` px of the centre."""
    m = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        off = rng.uniform(-extent / 2, extent / 2, 2)
        m = np.maximum(m, speck(size, (centre[0] + off[0], centre[1] + off[1]), rng.uniform(0.8, 1.6), rng))
    return m


def crack(size: int, centre: tuple[float, float], length: float, width: int, rng: np.random.Generator) -> np.ndarray:
    """A thin jagged line (a random walk of short straight segments) ``width`` px wide, about ``length`` long."""
    m = np.zeros((size, size), np.float32)
    steps = max(3, int(length / 5))
    angle = rng.uniform(0, np.pi)
    pts = [np.array(centre, np.float64)]
    for _ in range(steps):
        angle += rng.normal(0, 0.35)
        pts.append(pts[-1] + 5 * np.array([np.cos(angle), np.sin(angle)]))
    pts_arr = np.array(pts)
    pts_arr -= (pts_arr[-1] - pts_arr[0]) / 2  # centre the walk on the point
    cv2.polylines(m, [(pts_arr * 16).astype(np.int32)], False, 1.0, width, cv2.LINE_AA, shift=4)
    return m


def blend_dark(img: np.ndarray, opacity: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Paint ``colour`` over ``img`` with per-pixel ``opacity`` in [0, 1]."""
    a = opacity[..., None]
    return img * (1 - a) + colour * a


def inside_region(roi: np.ndarray, margin: int) -> np.ndarray:
    """Points at least ``margin`` px inside the ROI and the frame border: where an inside mark is centred."""
    s = roi.shape[0]
    region = cv2.erode(roi, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    region[: 2 * margin] = region[s - 2 * margin :] = False
    region[:, : 2 * margin] = region[:, s - 2 * margin :] = False
    return region


def outside_region(roi: np.ndarray, margin: int) -> np.ndarray:
    """Points at least ``margin`` px away from the ROI and the frame border: where an outside mark is centred."""
    s = roi.shape[0]
    region = cv2.dilate(roi, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) == 0
    region[: 2 * margin] = region[s - 2 * margin :] = False
    region[:, : 2 * margin] = region[:, s - 2 * margin :] = False
    return region


def finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Sensor noise and the uint8 clip every renderer ends with."""
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
