import subprocess
import sys

import cv2
import numpy as np
import pytest

from model.products import PRODUCTS, get_product
from model.vials import DEFECTS, render_vial_frame

CASES = [(name, d) for name, p in PRODUCTS.items() for d in p.defects]


@pytest.mark.parametrize("product", PRODUCTS)
def test_render_is_deterministic_by_seed(product):
    render, defect = get_product(product).render, get_product(product).defects[1]
    a = render(np.random.default_rng(4), 128, defect, "inside")
    b = render(np.random.default_rng(4), 128, defect, "inside")
    c = render(np.random.default_rng(5), 128, defect, "inside")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.defect_mask, b.defect_mask)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize(("product", "defect"), CASES)
@pytest.mark.parametrize("seed", range(3))
def test_defects_respect_the_roi(product, defect, seed):
    render = get_product(product).render
    inside = render(np.random.default_rng(seed), 256, defect, "inside")
    assert inside.defect_mask.any()
    assert (inside.roi[inside.defect_mask > 0] == 255).all(), "inside defects lie in the ROI"
    outside = render(np.random.default_rng(seed), 256, defect, "outside")
    assert outside.defect_mask.any()
    assert not (outside.roi[outside.defect_mask > 0] > 0).any(), "outside defects never touch the ROI"


@pytest.mark.parametrize(("product", "defect"), [c for c in CASES if c[0] != "vials"])
def test_new_families_draw_defects_at_native_size(product, defect):
    """Specks and particles stay small, lines thin: the sizes a camera sees at native resolution."""
    areas = []
    for seed in range(6):
        f = get_product(product).render(np.random.default_rng(seed), 256, defect, "inside")
        areas.append(int((f.defect_mask > 0).sum()))
        if defect == "crack":  # a 1 px line: eroding by a 3x3 cross leaves (almost) nothing
            core = cv2.erode(f.defect_mask, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
            assert (core > 0).sum() <= 0.1 * (f.defect_mask > 0).sum()
    assert max(areas) < 400 and min(areas) >= 2, areas


@pytest.mark.parametrize("product", PRODUCTS)
def test_frames_of_a_family_differ_and_keep_one_size(product):
    frames = [get_product(product).render(np.random.default_rng(s), 256, None, "inside") for s in range(3)]
    assert all(f.image.shape == (256, 256, 3) and not f.defect_mask.any() for f in frames)
    assert 0.05 < np.mean([(f.roi > 0).mean() for f in frames]) < 0.7
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_unknown_product_names_the_choices():
    with pytest.raises(ValueError, match="vials, ampoule, blister"):
        get_product("bottle")


def test_good_frame_has_no_defect_and_a_roi():
    f = render_vial_frame(np.random.default_rng(0), 128)
    assert not f.defect_mask.any() and 0.2 < (f.roi > 0).mean() < 0.7
    assert f.image.shape == (128, 128, 3) and f.image.dtype == np.uint8


def test_synth_cli_writes_the_layout(tmp_path):
    out = tmp_path / "ds"
    r = subprocess.run(
        [
            sys.executable,
            "run_line.py",
            "synth",
            "--out",
            str(out),
            "--train",
            "3",
            "--test",
            "8",
            "--seed",
            "2",
            "--size",
            "64",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert len(list((out / "train" / "good").glob("*.png"))) == 3
    goods = sorted(p.name for p in (out / "test" / "good").glob("*.png"))
    assert len(goods) == 4 and sum(n.startswith("outside_roi_") for n in goods) == 2
    for cls in DEFECTS:
        for img in (out / "test" / cls).glob("*.png"):
            mask = cv2.imread(str(out / "ground_truth" / cls / f"{img.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            roi = cv2.imread(str(out / "roi" / "test" / cls / img.name), cv2.IMREAD_GRAYSCALE)
            assert mask.shape == roi.shape == (64, 64) and mask.any()
