import re

import cv2
import numpy as np
import pytest
import torch

import model.keeping as keeping_module
from model.baseline import deviation_maps, fit_baseline
from model.budget import Budget
from model.checkpoint import load_checkpoint
from model.dataset import TrainSet, random_patch
from model.grdnet import create_grdnet
from model.inference import calibrate_threshold
from model.keeping import Selection
from model.roi_prior import fixed_roi
from model.train import train
from model.validation import build_validation_set, validate
from model.vials import render_vial_frame
from tests.conftest import fixed_plan, images_loaded, run_cli, tiny_config


def _frames(n: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    rendered = [render_vial_frame(np.random.default_rng(s), size) for s in range(n)]
    return np.stack([f.image for f in rendered]), np.stack([(f.roi > 0).astype(np.float32) for f in rendered])


def test_validation_marks_lie_inside_the_roi_for_defects_and_outside_it_for_good():
    images, rois = _frames(4)
    vs = build_validation_set(images, rois, seed=0, per_image=2)
    assert vs.kinds.count("good") == 4 and vs.kinds.count("good_outside") == 4 and vs.labels.sum() == 8
    src = np.repeat(np.arange(4), 4)  # per image: good, good_outside, 2 defective
    for frame, label, mask, kind, i in zip(vs.frames, vs.labels, vs.masks, vs.kinds, src, strict=True):
        changed = np.abs(frame.astype(int) - images[i].astype(int)).max(axis=2) > 0
        if kind == "good":
            assert not changed.any() and label == 0
        elif kind == "good_outside":
            assert changed.any() and not (changed & (rois[i] > 0)).any() and label == 0
        else:
            assert label == 1 and mask.any() and not (changed & (rois[i] == 0)).any()
            assert (rois[i][mask > 0] > 0).all()
    again = build_validation_set(images, rois, seed=0, per_image=2)
    assert np.array_equal(again.frames, vs.frames)


def test_threshold_scales_with_the_products_score_spread_and_stops_at_the_defects():
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0.2, 0.02, 200), rng.normal(0.6, 0.05, 100)
    a = calibrate_threshold(good, bad, 0.99, 0.5, 0.05)
    b = calibrate_threshold(good * 10, bad * 10, 0.99, 0.5, 0.05)
    assert b["threshold"] == pytest.approx(10 * a["threshold"])  # a score scale, not a fixed 0.05
    q, med = np.quantile(good, 0.99), np.median(good)
    assert a["threshold"] == pytest.approx(q + 0.5 * (q - med))
    assert a["val_escape_rate"] == 0.0 and a["val_false_reject_rate"] <= 0.01
    close = rng.normal(0.3, 0.01, 100)  # defects just above the good scores: the margin stops at their q0.05
    c = calibrate_threshold(good, close, 0.99, 5.0, 0.05)
    assert c["threshold"] == pytest.approx(np.quantile(close, 0.05)) and c["val_escape_rate"] <= 0.05


@pytest.mark.parametrize("bias", [10.0, -10.0])
def test_a_map_that_lights_everything_or_nothing_is_a_collapse(bias):
    cfg = tiny_config()
    model = create_grdnet(cfg).eval()
    torch.nn.init.zeros_(model.unet.head.weight)
    torch.nn.init.constant_(model.unet.head.bias, bias)
    images, rois = _frames(3, 64)
    figures, scores = validate(model, build_validation_set(images, rois, 0, 1))
    assert figures["collapsed"] and len(scores) == 9


def test_selection_keeps_the_weights_of_the_best_validation():
    model = torch.nn.Linear(2, 1)
    sel = Selection()
    for epoch, auroc in enumerate([0.7, 0.9, 0.8]):
        torch.nn.init.constant_(model.weight, float(epoch))
        sel.offer(model, {"epoch": epoch, "image_auroc": auroc, "pixel_auroc": 0.5, "collapsed": False})
    assert sel.best["epoch"] == 1 and sel.since_best == 1 and torch.all(sel.state["weight"] == 1.0)
    sel.offer(model, {"epoch": 3, "image_auroc": 0.99, "pixel_auroc": 0.5, "collapsed": True})
    assert sel.best["epoch"] == 1, "a collapsed epoch never wins over a sound one"


def test_selection_with_a_tolerance_prefers_later_epochs_within_it_of_the_best_seen():
    model = torch.nn.Linear(2, 1)
    sel = Selection(tolerance=0.03)
    kept = []
    for epoch, auroc in enumerate([0.80, 0.78, 0.76, 0.75, 0.79, 0.70]):
        sel.offer(model, {"epoch": epoch, "image_auroc": auroc, "pixel_auroc": 0.5, "collapsed": False})
        kept.append(sel.best["epoch"])
    # 0.78 is within 0.03 of 0.80; 0.76 is not (the best seen, not the kept one, is the reference: no drift down)
    assert kept == [0, 1, 1, 1, 4, 4] and sel.since_best == 1
    sel.offer(model, {"epoch": 6, "image_auroc": 0.99, "pixel_auroc": 0.5, "collapsed": True})
    assert sel.best["epoch"] == 4, "a collapsed epoch never wins over a sound one"
    strict = Selection()
    for epoch, auroc in enumerate([0.80, 0.79]):
        strict.offer(model, {"epoch": epoch, "image_auroc": auroc, "pixel_auroc": 0.5, "collapsed": False})
    assert strict.best["epoch"] == 0 and strict.since_best == 1


def test_training_records_the_curve_keeps_its_best_epoch_and_stops_early(tiny_data, tmp_path, monkeypatch):
    aurocs = iter([0.9, 0.8, 0.7, 0.95])
    real_validate = keeping_module.validate

    def scripted(model, vs, *args, **kwargs):
        figures, scores = real_validate(model, vs, *args, **kwargs)
        return {**figures, "image_auroc": next(aurocs, 0.5), "collapsed": False}, scores

    monkeypatch.setattr(keeping_module, "validate", scripted)
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.early_stop_patience, cfg.train.validate_from = 10, 2, 0.0
    meta = train(tiny_data, tmp_path / "m.safetensors", cfg, seed=0, progress=False)
    assert meta.training["epochs_run"] == 3 and "early stop" in meta.training["stop"]
    assert [c["epoch"] for c in meta.validation["curve"]] == [1, 2, 3] and meta.validation["kept"]["epoch"] == 1


def test_a_time_limited_run_ends_on_its_plan_unless_early_stopping_is_asked_for(tiny_data, tmp_path, monkeypatch):
    real_validate = keeping_module.validate
    calls = []

    def falling(model, vs, *args, **kwargs):  # each validation worse than the last: patience 2 would end epoch 3
        figures, scores = real_validate(model, vs, *args, **kwargs)
        calls.append(1)
        return {**figures, "image_auroc": 1.0 - 0.1 * len(calls), "collapsed": False}, scores

    monkeypatch.setattr(keeping_module, "validate", falling)
    monkeypatch.setattr(Budget, "replan", fixed_plan(5, after=1))
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.early_stop_patience, cfg.train.validate_from = 10, 2, 0.0
    meta = train(tiny_data, tmp_path / "m.safetensors", cfg, max_minutes=60, seed=0, progress=False)
    assert meta.training["epochs_run"] == 5 and "5 epochs planned" in meta.training["stop"]
    assert meta.validation["kept"]["epoch"] == 1, "the best epoch is still the one kept"
    calls.clear()
    cfg.train.early_stop_under_time_limit = True
    meta = train(tiny_data, tmp_path / "n.safetensors", cfg, max_minutes=60, seed=0, progress=False)
    assert meta.training["epochs_run"] == 3 and "early stop" in meta.training["stop"]


def test_tiny_checkpoint_carries_validation_calibration_and_baseline(tiny_checkpoint):
    _, meta = load_checkpoint(tiny_checkpoint)
    kept = meta.validation["kept"]
    assert kept in meta.validation["curve"] and 0 <= kept["image_auroc"] <= 1
    c = meta.calibration
    assert c.n_good >= 2 and c.n_defective >= 2 and 0 <= c.val_false_reject_rate <= 1
    assert meta.baseline is not None and meta.baseline.kernel in (3, 5, 7, 9, 11, 15)
    assert meta.baseline.roi().shape == (64, 64)


def test_median_baseline_finds_a_dark_dot_inside_its_roi():
    frame = np.full((1, 64, 64, 3), 180, np.uint8)
    cv2.circle(frame[0], (40, 20), 2, (40, 40, 40), -1)
    maps = deviation_maps(frame, 7)
    y, x = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert abs(x - 40) <= 2 and abs(y - 20) <= 2 and maps[0].max() > 0.4
    assert fixed_roi(np.stack([np.ones((4, 4)), np.zeros((4, 4)), np.ones((4, 4))])).all()


def test_baseline_is_fitted_on_validation_only_and_separates_marks():
    images, rois = _frames(8)
    vs = build_validation_set(images, rois, seed=1, per_image=2)
    b = fit_baseline(fixed_roi(rois), vs, 0.99, 0.5, 0.05)
    scores, maps = b.score(vs.frames)
    assert b.val_image_auroc > 0.6 and maps.shape == (len(vs.frames), 128, 128)
    assert not maps[:, ~b.roi()].any(), "nothing outside the fixed ROI counts"


def test_evaluate_prints_the_model_and_the_classical_baseline_side_by_side_and_reports(
    tiny_data, tiny_checkpoint, tmp_path, browser
):
    rep = tmp_path / "report"
    r = run_cli(
        "evaluate", "--data", str(tiny_data), "--checkpoint", str(tiny_checkpoint), "--baseline", "classic",
        "--report", str(rep),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "classical baseline" in r.stdout and "self-validation at training" in r.stdout
    assert "image AUROC: GRD-Net" in r.stdout
    # one self-contained file: curves, histograms, worst false rejects and escapes, every image embedded
    assert [p.name for p in rep.iterdir()] == ["report.html"]
    text = (rep / "report.html").read_text()
    for heading in ("Curves", "Worst false rejects", "Worst escapes", "Per class", "classic median filter"):
        assert heading in text, heading
    sources = re.findall(r'<img src="([^"]{0,30})', text)
    assert len(sources) >= 2 + 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    browser.get((rep / "report.html").as_uri())  # opens from disk, no server
    assert browser.title.startswith("GRD-Net evaluation") and images_loaded(browser) == []


def test_patches_are_cut_at_native_resolution_from_image_and_roi_alike():
    images, rois = _frames(2)
    patch_img, patch_roi = random_patch(images[0], rois[0], 32, np.random.default_rng(3))
    ys, xs = np.nonzero(
        np.all(np.lib.stride_tricks.sliding_window_view(images[0], (32, 32, 3)) == patch_img, (3, 4, 5))[..., 0]
    )
    assert len(ys) >= 1 and np.array_equal(rois[0][ys[0] : ys[0] + 32, xs[0] : xs[0] + 32], patch_roi)
    cfg = tiny_config()
    ds = TrainSet(images=images, rois=rois, patch=32, augment_cfg=cfg.augment, synth_cfg=cfg.synthesis, seed=0)
    x, x_noisy, mask, roi = ds[0]
    assert x.shape == x_noisy.shape == (3, 32, 32) and mask.shape == roi.shape == (1, 32, 32)


def test_dense_bottleneck_cannot_train_on_patches():
    cfg = tiny_config()
    cfg.net.bottleneck = "drae"
    with pytest.raises(ValueError, match="not fully convolutional"):
        create_grdnet(cfg)


def test_model_bench_table_gives_every_seed_the_mean_and_the_worst():
    from model.recipe_bench import markdown

    def row(seed: int, auroc: float, self_val: float = 0.5) -> dict:
        keys = ("pixel_auroc", "escape_rate", "baseline_image_auroc")
        return {
            "family": "ampoule", "seed": seed, "image_auroc": auroc, **dict.fromkeys(keys, 0.5),
            "self_val_image_auroc": self_val, "collapsed": False,
            "false_reject_rate_plain_good": 0.0, "false_reject_rate_outside_roi_good": 0.1,
            "epochs": 10, "kept_epoch": 8, "per_class_image_auroc": {"crack": auroc},
        }  # fmt: skip

    table = markdown([row(0, 0.9, 0.6), row(1, 0.7, 0.5), row(2, 0.8, 0.8)])
    lines = table.splitlines()
    assert len(lines) == 2 + 3 + 1 and "| ampoule | **mean** | 0.800 |" in lines[-1]
    assert "worst seed 1: image AUROC 0.700" in lines[-1] and "crack 0.700" in lines[3]
    assert "self-validation keeps seed 2: 0.800" in lines[-1]  # what train --candidates 3 would have kept
    collapsed = [row(0, 0.9, 0.6), row(1, 0.7, 0.9) | {"collapsed": True}]
    assert "self-validation keeps seed 0: 0.900" in markdown(collapsed)


def test_roi_prior_is_where_training_rois_agree_widened_and_survives_the_png():
    from model.roi_prior import decode_mask, encode_mask

    rois = np.zeros((4, 32, 32), np.float32)
    rois[:, 10:20, 10:20] = 1
    rois[0, 0:5, 0:5] = 1  # one image's stray ROI does not make the prior
    prior = fixed_roi(rois)
    assert prior[10:20, 10:20].all() and prior.sum() == 100
    wide = fixed_roi(rois, widen_px=2)
    assert wide[8:22, 8:22].all() and wide.sum() == 14 * 14
    assert (decode_mask(encode_mask(wide)) == wide).all()


def test_normal_level_discounts_what_lights_every_good_frame_but_not_a_new_mark():
    from model.grdnet import smooth_and_score
    from model.level import level_indices, normal_level

    good = np.zeros((6, 32, 32), np.float32)
    for i in range(6):
        good[i, 5, 5 + i % 2] = 1.0  # a normal structure, jittering by a pixel
    level = normal_level(good, 3, widen_px=1)
    assert level[5, 5] > 0.1 and level[20, 20] == 0
    frames = np.zeros((2, 32, 32), np.float32)
    frames[0, 5, 6] = 1.0  # the normal structure only
    frames[1, 20, 20] = 0.6  # a fainter mark where good frames are quiet
    plain, _ = smooth_and_score(torch.from_numpy(frames), 3)
    levelled, _ = smooth_and_score(torch.from_numpy(frames), 3, torch.from_numpy(level))
    assert plain[0] > plain[1], "without the level the normal structure outscores the mark"
    assert levelled[1] > levelled[0], "with it the mark decides"
    assert list(level_indices(100, 4)) == [0, 33, 66, 99] and list(level_indices(3, 8)) == [0, 1, 2]


def test_tiny_checkpoint_carries_its_roi_prior_and_normal_level(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    prior = meta.roi_prior()
    assert prior is not None and prior.shape == (64, 64) and 0 < prior.mean() < 1
    level = model.score_level.numpy()
    assert level.shape == (64, 64) and level.max() > 0, "training set the level from good frames"


def test_self_validation_chooses_the_level_widening_with_the_kernel(tiny_checkpoint):
    from model.inference import score_images

    model, meta = load_checkpoint(tiny_checkpoint)
    images, rois = _frames(4, 64)
    vs = build_validation_set(images, rois, 0, 2)
    good_maps = score_images(model, images, meta.roi_prior())[1]
    single = {w: validate(model, vs, [3, 5], meta.roi_prior(), good_maps, w)[0] for w in (0, 4, 12)}
    both, scores = validate(model, vs, [3, 5], meta.roi_prior(), good_maps, [0, 4, 12])
    best = max(single.values(), key=lambda f: f["image_auroc"])
    assert both["image_auroc"] == best["image_auroc"] and both["level_widen_px"] in (0, 4, 12)
    assert single[both["level_widen_px"]]["image_auroc"] == both["image_auroc"]
    assert len(scores) == len(vs.labels)


def test_training_keeps_the_chosen_widening_in_the_checkpoint(tiny_data, tmp_path):
    cfg = tiny_config()
    cfg.train.level_widen_choices = [1, 3]
    meta = train(tiny_data, tmp_path / "w.safetensors", cfg, seed=0, progress=False)
    kept = meta.validation["kept"]
    assert kept["level_widen_px"] in (1, 3) and meta.config.inference.level_widen_px == kept["level_widen_px"]


def test_bf16_scoring_gives_float32_maps_close_to_fp32_and_validation_takes_it(tiny_checkpoint):
    from model.inference import score_images
    from model.train_speed import cpu_has_native_bf16

    model, meta = load_checkpoint(tiny_checkpoint)
    images = _frames(4, 64)[0]
    s32, m32 = score_images(model, images, meta.roi_prior())
    s16, m16 = score_images(model, images, meta.roi_prior(), precision="bf16")
    assert m16.dtype == s16.dtype == np.float32 and m16.shape == m32.shape
    assert np.abs(m16 - m32).max() < 0.05, "bf16 autocast rounds the map, it does not change it"
    if cpu_has_native_bf16():  # where bf16 is emulated autocast still runs, only slower
        assert not np.array_equal(m16, m32), "the bf16 path really ran in bfloat16"
    vs = build_validation_set(images, np.ones(images.shape[:3], np.float32), 0, 1)
    f32 = validate(model, vs, roi=meta.roi_prior())[0]
    f16 = validate(model, vs, roi=meta.roi_prior(), precision="bf16")[0]
    assert abs(f16["good_max"] - f32["good_max"]) < 0.05 and 0.0 <= f16["image_auroc"] <= 1.0
