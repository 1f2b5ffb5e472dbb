import subprocess
import sys

import cv2
import numpy as np
import pytest

from model.vials import DEFECTS, render_vial_frame


def test_render_is_deterministic_by_seed():
    a = render_vial_frame(np.random.default_rng(4), 128, "fibre")
    b = render_vial_frame(np.random.default_rng(4), 128, "fibre")
    c = render_vial_frame(np.random.default_rng(5), 128, "fibre")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.defect_mask, b.defect_mask)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("defect", DEFECTS)
@pytest.mark.parametrize("seed", range(3))
def test_defects_respect_the_roi(defect, seed):
    inside = render_vial_frame(np.random.default_rng(seed), 128, defect, "inside")
    assert inside.defect_mask.any()
    assert (inside.roi[inside.defect_mask > 0] == 255).all(), "inside defects lie in the vial bodies"
    outside = render_vial_frame(np.random.default_rng(seed), 128, defect, "outside")
    assert outside.defect_mask.any()
    assert not (outside.roi[outside.defect_mask > 0] > 0).any(), "outside defects never touch a vial"


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
