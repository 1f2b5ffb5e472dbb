"""The operating threshold of the weights a training run keeps, with the figures behind it."""

from __future__ import annotations

import math

import numpy as np

from model.checkpoint import Calibration
from model.config import TrainConfig
from model.errors import InputError
from model.grdnet import GRDNet
from model.inference import calibrate_threshold, score_images
from model.validation import ValidationSet, validate


def checked_threshold(threshold: float) -> float:
    """The threshold, or an error before anything is written: a non-finite one means the scores diverged."""
    if not math.isfinite(threshold):
        raise InputError("calibrated threshold is not finite: the model's scores diverged")
    return threshold


def threshold_from_scores(
    good: np.ndarray, defective: np.ndarray, quantile: float, margin: float, max_escape: float, source: str
) -> tuple[float, Calibration]:
    """The rule of model/inference.calibrate_threshold on these scores, and the record a checkpoint keeps of it
    (``source``: where the scores came from); training and ``calibrate`` both set thresholds through it."""
    calib = calibrate_threshold(good, defective, quantile, margin, max_escape)
    threshold = checked_threshold(calib.pop("threshold"))
    return threshold, Calibration(
        quantile=quantile,
        margin=margin,
        max_val_escape=max_escape,
        n_good=len(good),
        n_defective=len(defective),
        source=source,
        **calib,
    )


def calibrate(
    model: GRDNet,
    vs: ValidationSet | None,
    kept_scores: np.ndarray | None,
    train_images: np.ndarray,
    prior: np.ndarray | None,
    tc: TrainConfig,
) -> tuple[float, Calibration]:
    """The kept weights' threshold and its figures, from the validation set scored under the final level
    (``kept_scores``: its scores from the kept epoch, when they are still valid), or without a holdout from the
    training images themselves (optimistic; the calibration's ``source`` says so). Refuses a non-finite one
    before anything is written."""
    if vs is None:
        scores, labels = score_images(model, train_images, prior)[0], np.zeros(len(train_images), int)
    else:
        labels = vs.labels
        scores = kept_scores if kept_scores is not None else validate(model, vs, roi=prior)[1]
    source = "holdout" if vs is not None else "training images (no holdout)"
    return threshold_from_scores(
        scores[labels == 0], scores[labels == 1], tc.threshold_quantile, tc.threshold_margin, tc.max_val_escape, source
    )
