"""``revalidate``: training's self-validation marks drawn on good frames the model never trained on."""

import json
import shutil

import numpy as np

from model.checkpoint import load_checkpoint
from model.dataset import index_split, load_train_images
from model.revalidate import revalidate
from model.validation import build_validation_set, validate
from tests.conftest import assert_one_line_error, run_cli


def test_figures_are_trainings_validation_on_the_given_frames_with_their_own_rois(tiny_checkpoint, tiny_data):
    r = revalidate(tiny_checkpoint, tiny_data, per_image=3, seed=5)
    model, meta = load_checkpoint(tiny_checkpoint)
    images, rois = load_train_images(index_split(tiny_data, "train"), meta.image_size, meta.channels)
    figures, _ = validate(model, build_validation_set(images, rois, 5, 3), roi=meta.roi_prior())
    assert r["image_auroc"] == figures["image_auroc"] and r["pixel_auroc"] == figures["pixel_auroc"]
    assert r["good_frames"] == len(images) and r["marked_frames"] == 3 * len(images)
    assert 0 <= r["brighter_marks"] <= r["marked_frames"]
    assert set(r["per_kind"]) == {"dot", "stroke", "smudge"}
    assert r["training_self_validation"] == meta.validation["kept"]["image_auroc"]
    assert r["spread_of_a_20_image_holdout"] is None  # 12 frames: fewer than two holdouts' worth
    assert revalidate(tiny_checkpoint, tiny_data, per_image=3, seed=5) == r  # deterministic by seed


def test_a_plain_folder_of_line_frames_is_marked_inside_the_checkpoints_roi_prior(tiny_checkpoint, tiny_data, tmp_path):
    for p in (tiny_data / "train" / "good").iterdir():
        shutil.copy(p, tmp_path / p.name)
    out = tmp_path / "figures.json"
    result = run_cli("revalidate", "--checkpoint", str(tiny_checkpoint), "--good", str(tmp_path), "--json", str(out))
    assert result.returncode == 0, result.stderr
    r = json.loads(out.read_text())
    n = len(list((tiny_data / "train" / "good").iterdir()))
    assert r["good_frames"] == n and r["marked_frames"] == 2 * n
    assert f"self-validation on {n} good frames" in result.stdout and "darker" in result.stdout
    assert np.isfinite(r["image_auroc"])


def test_no_frames_or_no_marks_is_one_clear_line(tiny_checkpoint, tmp_path):
    result = run_cli("revalidate", "--checkpoint", str(tiny_checkpoint), "--good", str(tmp_path))
    assert_one_line_error(result, f"{tmp_path}: no good frames")
    result = run_cli("revalidate", "--checkpoint", str(tiny_checkpoint), "--good", str(tmp_path), "--per-image", "0")
    assert_one_line_error(result, "--per-image 0")
