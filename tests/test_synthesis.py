import numpy as np
import pytest

from model.config import SynthesisConfig
from model.synthesis import perlin_noise, synthesize


def _image(seed=0, size=64):
    return np.random.default_rng(seed).random((size, size, 3)).astype(np.float32)


def test_same_seed_same_output_and_other_seed_differs():
    cfg = SynthesisConfig(probability=1.0)
    a1, m1 = synthesize(_image(), np.random.default_rng(5), cfg)
    a2, m2 = synthesize(_image(), np.random.default_rng(5), cfg)
    a3, m3 = synthesize(_image(), np.random.default_rng(6), cfg)
    assert np.array_equal(a1, a2) and np.array_equal(m1, m2)
    assert not np.array_equal(m1, m3)


@pytest.mark.parametrize("seed", range(6))
def test_mask_and_augmented_image_agree(seed):
    cfg = SynthesisConfig(probability=1.0)
    img = _image(seed)
    aug, mask = synthesize(img, np.random.default_rng(seed), cfg)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    outside = mask == 0
    assert np.array_equal(aug[outside], img[outside]), "pixels outside the mask must be untouched"
    if mask.any():
        changed = np.abs(aug - img).max(axis=2) > 1e-6
        assert changed[mask == 1].mean() > 0.5, "most masked pixels must change"


def test_probability_zero_gives_empty_mask_and_same_image():
    img = _image()
    aug, mask = synthesize(img, np.random.default_rng(0), SynthesisConfig(probability=0.0))
    assert not mask.any() and np.array_equal(aug, img)


def test_tiny_masks_are_skipped():
    cfg = SynthesisConfig(probability=1.0, min_area_fraction=1.01)  # no mask can cover more than the image
    img = _image()
    aug, mask = synthesize(img, np.random.default_rng(1), cfg)
    assert not mask.any() and np.array_equal(aug, img)


def test_perlin_noise_range_and_shape_check():
    n = perlin_noise((64, 64), (4, 8), np.random.default_rng(0))
    assert n.shape == (64, 64) and -1.5 < n.min() < 0 < n.max() < 1.5
    with pytest.raises(ValueError, match="multiple"):
        perlin_noise((60, 64), (8, 8), np.random.default_rng(0))


def test_texture_folder_is_used(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "t.png"), np.full((32, 32, 3), (0, 0, 255), np.uint8))
    from model.synthesis import load_textures

    textures = load_textures(str(tmp_path), 64)
    assert len(textures) == 1 and textures[0].shape == (64, 64, 3)
    with pytest.raises(ValueError, match="texture folder not found"):
        load_textures(str(tmp_path / "missing"), 64)


def _core_fraction(mask: np.ndarray) -> float:
    """Share of a mask that survives erosion by a 5x5 square: ~0 for strokes up to 3-4 px wide (a few
    pixels where two curves cross), large for blobs."""
    import cv2

    m = mask.astype(np.uint8)
    return float(cv2.erode(m, np.ones((5, 5), np.uint8)).sum()) / max(1, int(m.sum()))


def test_thin_curves_stay_thin_and_blobs_do_not():
    from model.synthesis import perlin_mask, thin_perlin_mask

    cfg = SynthesisConfig(probability=1.0, thin_width_px=(1.0, 3.0))
    thin = [thin_perlin_mask((128, 128), np.random.default_rng(s), cfg) for s in range(20)]
    drawn = [m for m in thin if m.any()]
    assert len(drawn) >= 10, "most draws must produce a curve"
    assert max(_core_fraction(m) for m in drawn) < 0.05, "a curve of width <= 3 px does not survive erosion"
    # and it is long: a curve, not a dot
    assert np.median([m.sum() for m in drawn]) >= 30
    coarse = SynthesisConfig(probability=1.0, max_scale_exp=2)  # the test must fail if curves were blobs
    blobs = [perlin_mask((128, 128), np.random.default_rng(s), coarse) for s in range(20)]
    assert np.median([_core_fraction(m) for m in blobs if m.any()]) > 0.3


def test_thin_fraction_switches_the_mask_kind():
    img = _image(size=128)
    thin_cfg = SynthesisConfig(probability=1.0, thin_fraction=1.0)
    blob_cfg = SynthesisConfig(probability=1.0, thin_fraction=0.0, max_scale_exp=2)
    thin = [synthesize(img, np.random.default_rng(s), thin_cfg)[1] for s in range(12)]
    blob = [synthesize(img, np.random.default_rng(s), blob_cfg)[1] for s in range(12)]
    assert all(_core_fraction(m) < 0.05 for m in thin)
    assert sum(m.sum() for m in thin) < sum(m.sum() for m in blob) / 3
    a1, m1 = synthesize(img, np.random.default_rng(3), thin_cfg)
    a2, m2 = synthesize(img, np.random.default_rng(3), thin_cfg)
    assert np.array_equal(a1, a2) and np.array_equal(m1, m2)


def test_small_anomalies_are_one_spot_of_a_few_pixels():
    """small_fraction 1: every blob anomaly lies inside one disc of at most small_radius_px, a few to a few
    dozen pixels, never a patch-wide spread of spots (what the whole-patch Perlin mask gives at fine scales)."""
    cfg = SynthesisConfig(probability=1.0, small_fraction=1.0, small_radius_px=(2.0, 6.0))
    img = _image(size=128)
    masks = [synthesize(img, np.random.default_rng(s), cfg)[1] for s in range(30)]
    drawn = [m for m in masks if m.any()]
    assert len(drawn) >= 20, "most draws must produce a spot"
    for m in drawn:
        ys, xs = np.nonzero(m)
        assert 3 <= m.sum() <= np.pi * 6.5**2
        assert max(np.ptp(ys), np.ptp(xs)) <= 13, "the spot spans one disc of radius <= 6 px"
    fine = SynthesisConfig(probability=1.0, min_scale_exp=5, max_scale_exp=5)
    spread = [synthesize(img, np.random.default_rng(s), fine)[1] for s in range(10)]
    assert all(np.ptp(np.nonzero(m)[0]) > 40 for m in spread if m.any()), "fine whole-patch masks spread widely"
    thin = SynthesisConfig(probability=1.0, small_fraction=1.0, thin_fraction=1.0)
    assert np.median([synthesize(img, np.random.default_rng(s), thin)[1].sum() for s in range(10)]) >= 30
