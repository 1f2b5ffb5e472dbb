"""``run_line.py calibrate``: a checkpoint's threshold set again from good frames the model never trained on.

Training calibrates from its held-out slice: 20 good images of a 200-image set, whose 0.99 quantile is their
maximum, so the false-reject rate on the line lands anywhere from 0 to several times the target (measured:
0.00-0.08 plain-good FRR for a 0.01 target, docs/results.md). A line soon holds hundreds of good frames of its
own product; scoring them gives the quantile the rule needs. Same rule as training (model/inference.py
``calibrate_threshold``) on those scores, same weights, same id; the calibration record names the frames.

The margin above the quantile defaults to ``LINE_MARGIN`` (0.25), not training's 0.5: training extrapolates
from 20 frames, this estimates the quantile itself. Chosen on the dev renders only (vials and ampoule, three
checkpoints each, 200 frames of a seed-21 render calibrating, the seed-7, -8 and -9 renders judging, 150
plain good images each): plain-good FRR over the three renders 0.000-0.027 with 0.25 (one of six above 0.02),
0.000-0.040 with 0 (two of six), 0.000-0.007 with 0.5 at 5-20 points more escapes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from model.calibration import threshold_from_scores
from model.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from model.dataset import DatasetError, images_in, read_image
from model.inference import score_images

LINE_MARGIN = 0.25


def min_good_frames(quantile: float) -> int:
    """Fewer than 1 / (1 - quantile) frames cannot put a sample above the quantile: their maximum is all
    the rule would see, the very estimate this command replaces."""
    return math.ceil(1 / (1 - quantile) - 1e-9) if quantile < 1 else 1


def good_frame_paths(folder: Path) -> list[Path]:
    """The images of ``folder``, or of its ``train/good`` when it is a dataset root (docs/design.md 3.2)."""
    folder = Path(folder)
    if (folder / "train" / "good").is_dir():
        folder = folder / "train" / "good"
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder of good frames")
    return images_in(folder)


def recalibrate(
    checkpoint: Path, good_dir: Path, out: Path, quantile: float | None = None, margin: float | None = None
) -> tuple[CheckpointMeta, float]:
    """Write ``out``: ``checkpoint`` with its threshold from the good frames in ``good_dir`` (the checkpoint's
    quantile and ``LINE_MARGIN`` unless given). Returns (the new metadata, the threshold it replaced)."""
    model, meta = load_checkpoint(checkpoint)
    tc = meta.config.train
    q = tc.threshold_quantile if quantile is None else quantile
    m = LINE_MARGIN if margin is None else margin
    paths = good_frame_paths(good_dir)
    need = min_good_frames(q)
    if len(paths) < need:
        raise DatasetError(
            f"{good_dir}: {len(paths)} good frames; the {q} quantile needs at least {need} "
            f"(1 / (1 - quantile)): add frames or lower --quantile"
        )
    frames = np.stack([read_image(p, meta.image_size, meta.channels) for p in paths])
    scores = score_images(model, frames, meta.roi_prior())[0]
    source = (
        f"good frames not trained on: {Path(good_dir)} (replaced {meta.threshold:.4f} from "
        f"{meta.calibration.source if meta.calibration else 'unknown'})"
    )
    threshold, calibration = threshold_from_scores(scores, np.empty(0), q, m, tc.max_val_escape, source)
    new = meta.model_copy(update={"threshold": threshold, "calibration": calibration})
    return save_checkpoint(Path(out), model, new), meta.threshold
