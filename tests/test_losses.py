import math

import pytest
import torch

from model.config import LossConfig
from model.losses import discriminator_loss, focal_loss, roi_focal_loss, ssim


def test_ssim_of_identical_images_is_one():
    x = torch.rand(2, 3, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)


def test_ssim_of_constant_images_hand_computed():
    # no variance: SSIM = (2ab + c1) / (a^2 + b^2 + c1), c1 = 0.01^2
    a, b, c1 = 0.2, 0.6, 1e-4
    x, y = torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_focal_loss_hand_computed():
    # p=0.8 on a positive: alpha * (1-p)^2 * -ln p = 0.25 * 0.04 * 0.22314
    assert focal_loss(torch.tensor([0.8]), torch.tensor([1.0])).item() == pytest.approx(0.25 * 0.04 * -math.log(0.8))
    # p=0.3 on a negative: (1-alpha) * p^2 * -ln(1-p)
    assert focal_loss(torch.tensor([0.3]), torch.tensor([0.0])).item() == pytest.approx(0.75 * 0.09 * -math.log(0.7))


def test_roi_focal_variant2_on_the_intersection():
    # two pixels: one inside the ROI (anomalous, predicted 0.8), one outside (anomalous but outside: target 0)
    pred = torch.tensor([0.8, 0.6]).view(1, 1, 1, 2)
    mask = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)
    roi = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    inside = 0.25 * 0.2**2 * -math.log(0.8)
    outside = 0.75 * 0.6**2 * -math.log(0.4)  # a prediction outside the ROI is a false positive
    got = roi_focal_loss(pred, mask, roi, LossConfig(roi_variant=2)).item()
    assert got == pytest.approx((inside + outside) / 2, rel=1e-5)


def test_roi_variant2_pushes_predictions_outside_the_roi_down():
    pred = torch.full((1, 1, 4, 4), 0.7, requires_grad=True)
    mask = torch.ones(1, 1, 4, 4)
    roi = torch.zeros(1, 1, 4, 4)
    roi[..., :2] = 1
    roi_focal_loss(pred, mask, roi, LossConfig(roi_variant=2)).backward()
    assert (pred.grad[..., :2] < 0).all(), "inside the ROI an anomaly is pushed up"
    assert (pred.grad[..., 2:] > 0).all(), "outside the ROI the prediction is pushed down"


@pytest.mark.parametrize("variant", [1, 3, 4])
def test_overlap_variants_add_a_positive_term(variant):
    pred = torch.full((1, 1, 4, 4), 0.5)
    mask = torch.zeros(1, 1, 4, 4)
    roi = torch.zeros(1, 1, 4, 4)
    roi[..., :2] = 1
    base = roi_focal_loss(pred, mask, roi, LossConfig(roi_variant=2)).item()
    assert roi_focal_loss(pred, mask, roi, LossConfig(roi_variant=variant)).item() > base


def test_discriminator_loss_perfect_and_chance():
    big = torch.tensor([20.0])
    assert discriminator_loss(big, -big).item() < 1e-6
    assert discriminator_loss(torch.zeros(1), torch.zeros(1)).item() == pytest.approx(math.log(2))
