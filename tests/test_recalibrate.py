"""``calibrate``: a checkpoint's threshold from good frames it never trained on, and the benchmark's figures
around it (the best escape any threshold reaches at a false-reject target)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model import metrics
from model.checkpoint import load_checkpoint, read_meta
from model.dataset import read_image
from model.inference import score_images
from model.recalibrate import LINE_MARGIN, min_good_frames, recalibrate
from model.synth_dataset import write_product_dataset
from tests.conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def line_goods(tmp_path_factory) -> Path:
    """100 good frames of the tiny checkpoint's product at another render seed: what a line would collect."""
    out = tmp_path_factory.mktemp("line_goods")
    write_product_dataset(out, n_train=100, n_test=0, seed=41, size=64)
    return out


def test_calibrate_takes_the_rule_over_the_new_frames_and_keeps_weights_and_id(tiny_checkpoint, line_goods, tmp_path):
    before = read_meta(tiny_checkpoint)
    out = tmp_path / "line.safetensors"
    meta, old = recalibrate(tiny_checkpoint, line_goods, out)
    assert old == before.threshold and read_meta(tiny_checkpoint).threshold == before.threshold  # source untouched
    model, _ = load_checkpoint(tiny_checkpoint)
    frames = np.stack([read_image(p, 64, 3) for p in sorted((line_goods / "train" / "good").iterdir())])
    scores = score_images(model, frames, before.roi_prior())[0]
    q, median = np.quantile(scores, 0.99), np.median(scores)
    expected = q + LINE_MARGIN * (q - median)
    assert meta.threshold == pytest.approx(expected, rel=1e-5)
    stored = read_meta(out)
    assert stored.id == before.id and stored.threshold == pytest.approx(expected, rel=1e-5)
    c = stored.calibration
    assert c.n_good == 100 and c.n_defective == 0 and str(line_goods) in c.source and c.margin == LINE_MARGIN
    assert f"replaced {before.threshold:.4f}" in c.source
    assert c.val_false_reject_rate == pytest.approx(float((scores > meta.threshold).mean()))
    assert c.val_false_reject_rate <= 0.01
    _, reloaded = load_checkpoint(out)  # the weights load under the stored config
    assert reloaded.roi_prior_png == before.roi_prior_png


def test_calibrate_refuses_too_few_frames_another_size_and_a_missing_folder(tiny_checkpoint, line_goods, tmp_path):
    assert min_good_frames(0.99) == 100 and min_good_frames(0.95) == 20 and min_good_frames(1.0) == 1
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted((line_goods / "train" / "good").iterdir())[:30]:
        shutil.copy(p, few / p.name)
    out = tmp_path / "out.safetensors"
    r = run_cli("calibrate", "--checkpoint", str(tiny_checkpoint), "--good", str(few), "--out", str(out))
    assert_one_line_error(r, f"{few}: 30 good frames; the 0.99 quantile needs at least 100")
    assert not out.exists()
    meta, _ = recalibrate(tiny_checkpoint, few, out, quantile=0.95)  # 30 are enough for a 0.95 quantile
    assert meta.calibration.quantile == 0.95 and meta.calibration.n_good == 30
    out.unlink()
    big = tmp_path / "big"
    shutil.copytree(few, big)
    bad = big / "0007.png"
    import cv2

    cv2.imwrite(str(bad), np.zeros((80, 80, 3), np.uint8))
    r = run_cli(
        "calibrate", "--checkpoint", str(tiny_checkpoint), "--good", str(big), "--out", str(out), "--quantile", "0.9"
    )
    assert_one_line_error(r, f"{bad}: 80x80 px")
    r = run_cli("calibrate", "--checkpoint", str(tiny_checkpoint), "--good", str(tmp_path / "no"), "--out", str(out))
    assert_one_line_error(r, "no such folder of good frames")
    assert not out.exists()


def test_calibrate_cli_says_old_and_new_threshold(tiny_checkpoint, line_goods, tmp_path):
    out = tmp_path / "line.safetensors"
    r = run_cli("calibrate", "--checkpoint", str(tiny_checkpoint), "--good", str(line_goods), "--out", str(out))
    assert r.returncode == 0, r.stderr
    old, new = read_meta(tiny_checkpoint).threshold, read_meta(out).threshold
    assert f"threshold {old:.4f} -> {new:.4f} from 100 good frames" in r.stdout


def test_best_escape_at_a_false_reject_target_is_what_the_best_threshold_passes():
    labels = np.array([0] * 50 + [1] * 10)
    good = np.linspace(0, 1, 50)  # the top good score is 1.0, the second 0.98
    bad = np.array([0.5, 0.99, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])
    scores = np.concatenate([good, bad])
    # rejecting at most 2 % of 50 good = one good image: the threshold may sit just under 1.0, passing 0.5 and
    # 0.99 would need it at 0.99 -> 0.99 passes too (score > t rejects); best: t in [0.98, 0.99) rejects 0.99
    assert metrics.best_escape_at(labels, scores, 0.02) == pytest.approx(0.1)
    assert metrics.best_escape_at(labels, scores, 0.0) == pytest.approx(0.2)  # no good rejected: t = 1.0
    assert np.isnan(metrics.best_escape_at(np.zeros(5, int), np.arange(5.0), 0.02))


def test_model_bench_reuses_a_checkpoint_and_judges_it_at_the_line_calibrated_threshold(tiny_checkpoint, tmp_path):
    import json

    from model.recipe_bench import BenchPlan, run
    from tests.conftest import tiny_config

    root = tmp_path / "bench"
    root.mkdir()
    shutil.copy(tiny_checkpoint, root / "vials_seed0.safetensors")
    plan = BenchPlan(eval_seed=5, eval_images=40, calibrate_images=100, calibrate_seed=6, reuse_checkpoints=True,
                     image_size=64)  # fmt: skip
    (row,) = run(root, ["vials"], tiny_config(), [0], plan)
    assert row["checkpoint"] == read_meta(tiny_checkpoint).id  # evaluated, not trained again
    assert row["eval_images"] == 40 and (root / "vials_eval_seed5_n40" / "test").is_dir()
    line = read_meta(root / "vials_seed0_line.safetensors")
    assert row["line_threshold"] == line.threshold and line.calibration.n_good == 100
    images = json.loads((root / "vials_seed0.json").read_text())["images"]
    defects = [im["score"] for im in images if im["label"] != "good"]
    assert row["line_escape_rate"] == pytest.approx(np.mean([s <= line.threshold for s in defects]))
    assert row["escape_rate"] == pytest.approx(np.mean([s <= row["threshold"] for s in defects]))
    table = (root / "results.md").read_text()
    assert "escape, line-calibrated" in table and "best escape at FRR 0.02" in table
