from pathlib import Path

import cv2
import numpy as np
import pytest

from model.dataset import DatasetError, index_split, load_roi, read_image, read_mask


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_missing_dataset_and_split(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nope")):
        index_split(tmp_path / "nope", "train")
    with pytest.raises(DatasetError, match=r"train: missing folder"):
        index_split(tmp_path, "train")


def test_no_images(tmp_path):
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"train: no images"):
        index_split(tmp_path, "train")


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "train" / "good" / "000.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"000.png: unreadable image"):
        read_image(bad, 32, 3)


def test_mask_size_mismatch_names_the_mask(tmp_path):
    _png(tmp_path / "test" / "crack" / "001.png", np.zeros((40, 40, 3), np.uint8))
    _png(tmp_path / "ground_truth" / "crack" / "001_mask.png", np.zeros((30, 40), np.uint8))
    s = index_split(tmp_path, "test")[0]
    with pytest.raises(DatasetError, match=r"001_mask.png: mask size 40x30 differs from image 001.png 40x40"):
        read_mask(s.mask_path, s.path, 32)


def test_missing_ground_truth_names_it(tmp_path):
    _png(tmp_path / "test" / "crack" / "001.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"001_mask.png: missing ground-truth mask"):
        index_split(tmp_path, "test")


def test_gray_mvtec_style_category_loads_as_rgb_and_uses_fixed_roi(tmp_path):
    _png(tmp_path / "train" / "good" / "000.png", np.full((50, 60), 77, np.uint8))
    _png(tmp_path / "roi.png", np.full((50, 60), 255, np.uint8))
    s = index_split(tmp_path, "train")
    assert s[0].roi_path == tmp_path / "roi.png"
    img = read_image(s[0].path, 32, 3, resize=True)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and (img == 77).all()
    assert read_image(s[0].path, 32, 1, resize=True).shape == (32, 32, 1)


def test_per_image_roi_wins_over_fixed(tmp_path):
    _png(tmp_path / "train" / "good" / "000.png", np.zeros((32, 32, 3), np.uint8))
    _png(tmp_path / "roi.png", np.full((32, 32), 255, np.uint8))
    _png(tmp_path / "roi" / "train" / "good" / "000.png", np.zeros((32, 32), np.uint8))
    assert index_split(tmp_path, "train")[0].roi_path == tmp_path / "roi" / "train" / "good" / "000.png"


def test_an_image_off_the_native_size_names_the_file_and_the_way_out(tmp_path):
    _png(tmp_path / "train" / "good" / "000.png", np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"000.png: 64x48 px, but the model's native size .* is 32x32.*--resize"):
        read_image(tmp_path / "train" / "good" / "000.png", 32, 3)


def test_train_cli_refuses_mixed_sizes_an_empty_roi_and_too_few_images(tmp_path):
    from tests.conftest import assert_one_line_error, run_cli

    mixed = tmp_path / "mixed"
    for i in range(20):
        _png(mixed / "train" / "good" / f"{i:03d}.png", np.zeros((256 if i != 7 else 200, 256, 3), np.uint8))
    r = run_cli("train", "--data", str(mixed), "--out", str(tmp_path / "m.safetensors"), "--epochs", "1")
    assert_one_line_error(r, "007.png: 256x200 px, but the model's native size")

    few = tmp_path / "few"
    for i in range(5):
        _png(few / "train" / "good" / f"{i:03d}.png", np.zeros((256, 256, 3), np.uint8))
    r = run_cli("train", "--data", str(few), "--out", str(tmp_path / "m.safetensors"), "--epochs", "1")
    assert_one_line_error(r, "5 good images are too few to hold 12 out for validation")


def test_a_roi_that_covers_nothing_is_refused_for_training(tmp_path):
    _png(tmp_path / "train" / "good" / "000.png", np.zeros((32, 32, 3), np.uint8))
    _png(tmp_path / "roi" / "train" / "good" / "000.png", np.zeros((32, 32), np.uint8))
    s = index_split(tmp_path, "train")[0]
    assert not load_roi(s, 32).any()  # evaluation may meet one (a frame with nothing to inspect)
    with pytest.raises(DatasetError, match=r"000.png: ROI mask covers nothing"):
        load_roi(s, 32, require_area=True)
