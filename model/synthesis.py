"""Perlin-noise synthetic anomalies (DRAEM, as GRD-Net uses them): pure functions of (image, rng).

``synthesize(image, rng, cfg)`` -> (augmented image, mask); same rng state, same output.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.config import SynthesisConfig
from model.errors import InputError

SMALL_MIN_PX = 3  # a small anomaly of fewer pixels is skipped (min_area_fraction would skip every one)


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise in about [-1, 1]; ``shape`` must be a multiple of ``res`` per axis."""
    h, w = shape
    ry, rx = res
    if h % ry or w % rx:
        raise ValueError(f"perlin shape {shape} is not a multiple of res {res}")
    angles = 2 * np.pi * rng.random((ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    gy = np.linspace(0, ry, h, endpoint=False)
    gx = np.linspace(0, rx, w, endpoint=False)
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = yy - y0, xx - x0

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grads[y0 + oy, x0 + ox]
        return g[..., 0] * (fy - oy) + g[..., 1] * (fx - ox)

    def fade(t: np.ndarray) -> np.ndarray:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    uy, ux = fade(fy), fade(fx)
    top = dot(0, 0) * (1 - ux) + dot(0, 1) * ux
    bottom = dot(1, 0) * (1 - ux) + dot(1, 1) * ux
    return np.sqrt(2) * (top * (1 - uy) + bottom * uy)


def _rotate(a: np.ndarray, deg: float) -> np.ndarray:
    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _covering_side(shape: tuple[int, ...]) -> int:
    """The square power-of-two side that covers ``shape`` (Perlin lattices need a multiple of their res)."""
    return 1 << max(shape[0] - 1, shape[1] - 1).bit_length()


def _rotated_perlin(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Perlin noise at lattice ``res`` over the covering square, turned by a random angle, cropped to ``shape``."""
    side = _covering_side(shape)
    noise = perlin_noise((side, side), res, rng).astype(np.float32)
    return _rotate(noise, float(rng.uniform(-90, 90)))[: shape[0], : shape[1]]


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, cfg: SynthesisConfig) -> np.ndarray:
    """Binary mask (float32 0/1) from rotated Perlin noise at a random scale 2^k per axis."""
    ky, kx = rng.integers(cfg.min_scale_exp, cfg.max_scale_exp + 1, size=2)
    noise = _rotated_perlin(shape, (1 << int(ky), 1 << int(kx)), rng)
    return (noise > cfg.threshold).astype(np.float32)


def thin_perlin_mask(shape: tuple[int, int], rng: np.random.Generator, cfg: SynthesisConfig) -> np.ndarray:
    """Binary mask of thin curves: a band of random width around the zero crossings of Perlin noise,
    kept only where a second, coarse Perlin field is above the threshold, so the curves come in segments of
    varied length.

    Blobs alone never look like a scratch or a fibre one or two pixels wide; the zero set of smooth noise
    gives curved and nearly straight lines of a controlled width. The distance to the crossing is
    |n| / |grad n|, so the width does not depend on the noise scale."""
    k = int(rng.integers(cfg.thin_scale_exp[0], cfg.thin_scale_exp[1] + 1))
    noise = _rotated_perlin(shape, (1 << k, 1 << k), rng)
    gy, gx = np.gradient(noise)
    distance = np.abs(noise) / (np.hypot(gx, gy) + 1e-6)
    half_width = rng.uniform(*cfg.thin_width_px) / 2
    curves = distance < half_width
    g = 1 << int(rng.integers(0, 3))  # coarse gate: a few long segments rather than speckle
    gate = _rotated_perlin(shape, (g, g), rng)
    return (curves & (gate > cfg.threshold)).astype(np.float32)


def small_perlin_mask(shape: tuple[int, int], rng: np.random.Generator, cfg: SynthesisConfig) -> np.ndarray:
    """Binary mask of one small irregular blob: fine Perlin blobs (lattice 2^3-2^5) seen through a disc of
    random radius (``small_radius_px``) centred on one of their pixels.

    Real foreign matter is a few pixels across; whole-patch Perlin masks are either large blobs or spots
    scattered over the whole patch, so nothing teaches the map that one small dark or bright spot among normal
    small structures (bubbles, droplets) is the defect. Perlin-shaped, so it is not the renderers' ellipses nor
    self-validation's dots."""
    k = int(rng.integers(3, 6))
    blobs = _rotated_perlin(shape, (1 << k, 1 << k), rng) > cfg.threshold
    ys, xs = np.nonzero(blobs)
    if len(ys) == 0:
        return np.zeros(shape, np.float32)
    i = int(rng.integers(len(ys)))
    r = rng.uniform(*cfg.small_radius_px)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    window = (yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r
    return (blobs & window).astype(np.float32)


def load_textures(texture_dir: str | None, size: int) -> list[np.ndarray]:
    """Optional texture folder (e.g. DTD): every readable image, RGB float in [0, 1] at ``size``."""
    if not texture_dir:
        return []
    folder = Path(texture_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: texture folder not found")
    out = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"}:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(cv2.resize(img[..., ::-1], (size, size)).astype(np.float32) / 255)
    if not out:
        raise InputError(f"{folder}: no readable texture images")
    return out


def anomaly_texture(
    shape: tuple[int, int, int], rng: np.random.Generator, textures: list[np.ndarray] | None = None
) -> np.ndarray:
    """Source N of the anomaly's appearance: a texture image, random RGB, or a Perlin field."""
    h, w, c = shape
    choice = rng.integers(0, 3 if textures else 2)
    if choice == 2:
        tex = textures[int(rng.integers(len(textures)))]
        tex = cv2.resize(tex, (w, h))
        tex = tex * rng.uniform(0.6, 1.4, size=3) + rng.uniform(-0.2, 0.2)
        tex = _rotate(np.clip(tex, 0, 1).astype(np.float32), float(rng.uniform(-90, 90)))
        return tex if c == 3 else tex.mean(axis=2, keepdims=True)
    if choice == 0:
        color = rng.random(c)
        speckle = rng.normal(0, 0.08, size=(h, w, c))
        return np.clip(color + speckle, 0, 1)
    side = _covering_side(shape)
    k = 1 << int(rng.integers(2, 6))
    field = perlin_noise((side, side), (k, k), rng)[:h, :w]
    field = (field - field.min()) / (np.ptp(field) + 1e-8)
    tint = rng.random(c)
    return np.clip(field[..., None] * tint, 0, 1)


def synthesize(
    image: np.ndarray,
    rng: np.random.Generator,
    cfg: SynthesisConfig,
    textures: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image float [0,1] HxWxC, rng) -> (augmented image, mask HxW float 0/1).

    With probability ``cfg.probability`` (a share ``thin_fraction`` of them as thin curves, a share
    ``small_fraction`` of the others as one small blob) blends
    X* = (1-M) X + (1-beta) M X + beta M N; otherwise (and when the mask would be smaller than
    ``min_area_fraction``, or a small blob than ``SMALL_MIN_PX``) returns the image unchanged and an empty mask.
    """
    h, w = image.shape[:2]
    empty = np.zeros((h, w), np.float32)
    if rng.random() >= cfg.probability:
        return image.astype(np.float32, copy=True), empty
    thin = cfg.thin_fraction > 0 and rng.random() < cfg.thin_fraction
    small = not thin and cfg.small_fraction > 0 and rng.random() < cfg.small_fraction
    if thin:
        mask = thin_perlin_mask((h, w), rng, cfg)
    elif small:
        mask = small_perlin_mask((h, w), rng, cfg)
    else:
        mask = perlin_mask((h, w), rng, cfg)
    too_small = mask.sum() < SMALL_MIN_PX if small else mask.mean() < cfg.min_area_fraction
    if too_small:
        return image.astype(np.float32, copy=True), empty
    texture = anomaly_texture(image.shape, rng, textures)
    beta = rng.uniform(cfg.beta_min, cfg.beta_max)
    m = mask[..., None]
    out = (1 - m) * image + (1 - beta) * m * image + beta * m * texture
    return out.astype(np.float32), mask
