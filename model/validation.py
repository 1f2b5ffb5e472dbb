"""Self-validation without labelled defects: the held-out good images, the same images carrying marks drawn by
a generator that training never uses, scored in eval mode at native resolution.

Training injects Perlin blobs and Perlin zero-crossing curves into patches; validation draws geometric marks
instead (dots, poly-line strokes, Gaussian smudges; darker or brighter than the product) on whole frames,
inside the ROI for the defective set and outside it for a second good set. A customer never has labelled
defects at training time; this set is what picks the epoch, flags a collapsed run and sets the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from model import metrics
from model.grdnet import GRDNet, smooth_and_score
from model.inference import score_images
from model.level import normal_level
from model.train_speed import Precision

MARKS = ("dot", "stroke", "smudge")


@dataclass
class ValidationSet:
    frames: np.ndarray  # uint8 [N, S, S, C]
    labels: np.ndarray  # 1 = carries a mark inside the ROI
    masks: np.ndarray  # float [N, S, S], the marks inside the ROI
    kinds: list[str]  # "good", "good_outside" or the mark drawn


def _opacity(kind: str, size: int, centre: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cx, cy = centre
    if kind == "dot":
        r = rng.uniform(1.2, 2.5)
        cv2.circle(m, (int(cx * 16), int(cy * 16)), int(r * 16), 1.0, -1, cv2.LINE_AA, shift=4)
    elif kind == "stroke":
        n = int(rng.integers(2, 5))
        pts = np.array([cx, cy]) + np.cumsum(rng.normal(0, rng.uniform(4, 12), (n, 2)), axis=0)
        pts -= pts.mean(axis=0) - np.array([cx, cy])
        cv2.polylines(m, [(pts * 16).astype(np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA, shift=4)
    else:  # smudge: a soft Gaussian spot
        sigma = rng.uniform(1.0, 2.5)
        yy, xx = np.mgrid[0:size, 0:size]
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
    return m


def draw_mark(
    image: np.ndarray, region: np.ndarray, allowed: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 image -> (image with one ``kind`` mark centred in ``region``, clipped to ``allowed``; mark mask)."""
    ys, xs = np.nonzero(region)
    i = int(rng.integers(len(ys)))
    a = _opacity(kind, image.shape[0], (float(xs[i]), float(ys[i])), rng) * allowed
    contrast = rng.uniform(0.5, 0.95)
    img = image.astype(np.float32)
    if rng.random() < 0.7:  # most foreign matter is darker than the product
        out = img * (1 - contrast * a[..., None])
    else:
        out = img + contrast * a[..., None] * (255 - img)
    return np.clip(out, 0, 255).astype(np.uint8), (a > 0.3).astype(np.float32)


def _regions(roi: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres inside the ROI, centres outside it), both ``margin`` px from its edge and the frame border."""
    k = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    r = (roi > 0.5).astype(np.uint8)
    border = np.zeros_like(r, bool)
    border[margin:-margin, margin:-margin] = True
    return (cv2.erode(r, k) > 0) & border, (cv2.dilate(r, k) == 0) & border


def build_validation_set(images: np.ndarray, rois: np.ndarray, seed: int, per_image: int) -> ValidationSet:
    """Each held-out good image as it is, with one mark outside its ROI (a good product, when there is room),
    and ``per_image`` times with one mark inside it (defective). Deterministic by ``seed``."""
    frames, labels, masks, kinds = [], [], [], []
    size = images.shape[1]
    for i, (img, roi) in enumerate(zip(images, rois, strict=True)):
        rng = np.random.default_rng([seed, 7919, i])  # a stream training's (seed, epoch, index) never uses
        inside, outside = _regions(roi, 4)
        frames.append(img), labels.append(0), masks.append(np.zeros((size, size), np.float32)), kinds.append("good")
        if outside.any():
            out, _ = draw_mark(img, outside, roi < 0.5, str(rng.choice(MARKS)), rng)
            frames.append(out), labels.append(0), masks.append(np.zeros((size, size), np.float32))
            kinds.append("good_outside")
        for _ in range(per_image if inside.any() else 0):
            kind = str(rng.choice(MARKS))
            out, mask = draw_mark(img, inside, roi > 0.5, kind, rng)
            frames.append(out), labels.append(1), masks.append(mask), kinds.append(kind)
    return ValidationSet(np.stack(frames), np.array(labels), np.stack(masks), kinds)


def validate(
    model: GRDNet,
    vs: ValidationSet,
    kernels: list[int] | None = None,
    roi: np.ndarray | None = None,
    level_maps: np.ndarray | None = None,
    level_widen_px: int | list[int] = 0,
    precision: Precision = "fp32",
) -> tuple[dict, np.ndarray]:
    """Eval-mode figures on the validation set, and its scores; ``roi``: the ROI prior the line will score in;
    ``level_maps``: good training frames' maps, from which each kernel's normal level is made (None: the
    model's own ``score_level``).

    ``kernels``: smoothing kernels to try on the same maps (the map is computed once), and with ``level_maps``
    each widening of the normal level in ``level_widen_px`` (one or several); the figures and scores are those of
    the pair with the best image AUROC (the configured kernel when ``kernels`` is None). How the map becomes one
    number decides what a thin line or a normal look-alike scores, so it is chosen like the epoch.
    ``collapsed``: the map lights good images broadly (on the median good image more than 5 % of the inspected
    pixels above 0.5; a sound map lights well under 1 %) or the marks are not told from good at all (AUROC <= 0.6).
    ``precision``: of the network's forward passes (model/inference.score_images)."""
    _, maps = score_images(model, vs.frames, roi, precision=precision)
    widths = level_widen_px if isinstance(level_widen_px, list) else [level_widen_px]
    best: tuple[float, int, int, np.ndarray] | None = None
    for k in kernels or [model.cfg.inference.smoothing_kernel]:
        for w in widths if level_maps is not None else [model.cfg.inference.level_widen_px]:
            level = model.score_level
            if level_maps is not None:
                level = torch.from_numpy(normal_level(level_maps, k, w))
            scores = smooth_and_score(torch.from_numpy(maps), k, level)[0].numpy()
            auroc = metrics.image_auroc(vs.labels, scores)
            if best is None or auroc > best[0]:
                best = (auroc, k, w, scores)
    assert best is not None
    auroc, kernel, widen, scores = best
    good = scores[vs.labels == 0]
    area = float(roi.mean()) if roi is not None and roi.any() else 1.0  # the share of the inspected pixels
    lit = float(np.median((maps[vs.labels == 0] > 0.5).mean(axis=(1, 2)))) / area
    figures = {
        "image_auroc": auroc,
        "pixel_auroc": metrics.pixel_auroc(maps, vs.masks),
        "kernel": kernel,
        "level_widen_px": widen,
        "good_median": float(np.median(good)),
        "good_max": float(good.max()),
        "good_lit_fraction": lit,
    }
    figures["collapsed"] = bool(lit > 0.05 or not (auroc > 0.6))
    return figures, scores
