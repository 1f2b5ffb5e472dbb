"""``run_line.py revalidate``: a checkpoint's self-validation again, on good frames it never trained on.

Training self-validates on its held-out slice, 20 good images of a 200-image set: from one 20-image draw to the
next that figure moves by ~0.04 (standard deviation, measured on 200 fresh good frames per family, 2026-12-07),
and it does not say which marks the model misses. A line soon holds hundreds of good frames of its product;
drawing training's validation marks (model/validation.py) on them gives the same figure with a smaller spread,
per mark kind and per direction (darker or brighter than the product there). No labels are needed, as in training.

ROI: each frame's own mask where ``good`` is a dataset root with ``roi/`` masks (docs/design.md 3.2), else the
checkpoint's ROI prior for every frame, as the line inspects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model import metrics
from model.checkpoint import load_checkpoint
from model.dataset import DatasetError, index_split, load_train_images, read_image
from model.errors import InputError
from model.inference import score_images
from model.recalibrate import good_frame_paths
from model.validation import MARKS, ValidationSet, build_validation_set

HOLDOUT = 20  # the training holdout's size whose spread is reported (cpu preset: 10 % of 200)


def _good_frames(good_dir: Path, size: int, channels: int, prior: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 frames, float ROIs): a dataset root's train/good with its masks, else a folder under the prior."""
    root = Path(good_dir)
    if (root / "train" / "good").is_dir() and (root / "roi").is_dir():
        return load_train_images(index_split(root, "train"), size, channels)
    paths = good_frame_paths(root)
    if not paths:
        raise DatasetError(f"{root}: no good frames to draw validation marks on")
    frames = np.stack([read_image(p, size, channels) for p in paths])
    roi = np.ones((size, size), np.float32) if prior is None else prior.astype(np.float32)
    return frames, np.repeat(roi[None], len(frames), axis=0)


def _source_index(vs: ValidationSet) -> np.ndarray:
    """For every validation frame, the index of the good frame it was drawn on (frames come grouped per image)."""
    return np.cumsum(np.array(vs.kinds) == "good") - 1


def _auroc_against_good(vs: ValidationSet, scores: np.ndarray, chosen: np.ndarray) -> float | None:
    """Image AUROC of the ``chosen`` marked frames against every good one (None when either side is empty)."""
    sel = (vs.labels == 0) | chosen
    if not chosen.any() or not (vs.labels == 0).any():
        return None
    return metrics.image_auroc(chosen[sel].astype(int), scores[sel])


def holdout_spread(vs: ValidationSet, scores: np.ndarray, n_images: int, size: int, draws: int = 100) -> float | None:
    """Standard deviation of the image AUROC over ``draws`` random ``size``-image subsets, each with all its
    marks (what a training holdout of that size would read); None when there are not twice as many images."""
    if n_images < 2 * size:
        return None
    src, rng, figures = _source_index(vs), np.random.default_rng(0), []
    for _ in range(draws):
        sel = np.isin(src, rng.choice(n_images, size, replace=False))
        figures.append(metrics.image_auroc(vs.labels[sel], scores[sel]))
    return float(np.std(figures))


def revalidate(checkpoint: Path, good_dir: Path, per_image: int = 2, seed: int = 0) -> dict:
    """Self-validation figures of ``checkpoint`` on the good frames in ``good_dir`` with ``per_image`` marks each
    (deterministic by ``seed``): overall, per mark kind, darker and brighter marks, beside training's figure."""
    if per_image < 1:
        raise InputError(f"--per-image {per_image}: draw at least 1 mark on each good frame")
    model, meta = load_checkpoint(checkpoint)
    prior = meta.roi_prior()
    images, rois = _good_frames(Path(good_dir), meta.image_size, meta.channels, prior)
    vs = build_validation_set(images, rois, seed, per_image)
    if not vs.labels.any():
        raise DatasetError(f"{good_dir}: the ROI leaves no room for a validation mark (4 px from its edge)")
    scores, maps = score_images(model, vs.frames, prior)
    kinds = np.array(vs.kinds)
    marked = vs.labels == 1
    src = _source_index(vs)
    brighter = np.zeros(len(marked), bool)
    for i in np.flatnonzero(marked):  # darker or brighter than the good frame under the mark's core
        core = vs.masks[i] > 0
        if core.any():
            diff = vs.frames[i][core].astype(np.float32) - images[src[i]][core].astype(np.float32)
            brighter[i] = float(diff.mean()) > 0
    kept = (meta.validation or {}).get("kept") or {}
    return {
        "checkpoint": meta.id,
        "good_frames": len(images),
        "marked_frames": int(marked.sum()),
        "brighter_marks": int(brighter.sum()),
        "per_image": per_image,
        "seed": seed,
        "image_auroc": metrics.image_auroc(vs.labels, scores),
        "pixel_auroc": metrics.pixel_auroc(maps, vs.masks),
        "per_kind": {k: _auroc_against_good(vs, scores, kinds == k) for k in MARKS},
        "darker": _auroc_against_good(vs, scores, marked & ~brighter),
        "brighter": _auroc_against_good(vs, scores, brighter),
        f"spread_of_a_{HOLDOUT}_image_holdout": holdout_spread(vs, scores, len(images), HOLDOUT),
        "training_self_validation": kept.get("image_auroc"),
    }
