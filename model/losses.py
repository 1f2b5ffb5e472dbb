"""GRD-Net losses (paper Eq. 2-6 and the ROI ablation of section 8.4.2), each a small pure function.

ROI variant 2 (the default, the paper's best): the focal loss is taken on the intersection
``I = A * ROI`` against the synthetic mask inside the ROI, and every pixel predicted outside the ROI is
a false positive (target 0). Written per pixel that is ``FL(A, M * ROI)``. The literal ``FL(A * ROI, M)``
has zero gradient outside the ROI, so nothing would teach the network to ignore defects there; this form
keeps the paper's intersection and makes the attention learnable (see README, "ROI loss").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.config import LossConfig

EPS = 1e-6


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of images in [0, 1] (Gaussian window, Wang et al. constants)."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x.device).to(x.dtype)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [pad] * 4, mode="reflect"), w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def contextual_loss(x: torch.Tensor, x_hat: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """L_con = wa * L1 + wb * (1 - SSIM)."""
    return cfg.wa * F.l1_loss(x_hat, x) + cfg.wb * (1 - ssim(x, x_hat, cfg.ssim_window))


def adversarial_loss(feat_real: torch.Tensor, feat_fake: torch.Tensor) -> torch.Tensor:
    """L_adv: L2 feature matching on the discriminator's encoder output."""
    return F.mse_loss(feat_fake, feat_real.detach())


def encoder_loss(z: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    """L_enc = L1(z, z_hat) (GRD-Net; GANomaly uses L2)."""
    return F.l1_loss(z_hat, z)


def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (BCE(C(x), 1) + BCE(C(x_hat), 0))."""
    real = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
    fake = F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    return 0.5 * (real + fake)


def focal_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Binary focal loss on probabilities (Lin et al.), mean over pixels."""
    p = pred.clamp(EPS, 1 - EPS)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    p_t = target * p + (1 - target) * (1 - p)
    alpha_t = target * alpha + (1 - target) * (1 - alpha)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()


def overlap_loss(pred: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Cross-entropy overlap distance between the predicted map and a region mask."""
    p = pred.clamp(EPS, 1 - EPS)
    return -(region * torch.log(p) + (1 - region) * torch.log(1 - p)).mean()


def roi_focal_loss(pred: torch.Tensor, mask: torch.Tensor, roi: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """The discriminative loss for ROI ablation case ``cfg.roi_variant`` (pred, mask, roi: ``[B,1,H,W]``).

    1: FL(A, M) + lambda * overlap(A, ROI)
    2: FL on the intersection: FL(A, M * ROI)  (default, see module docstring)
    3: case 2 + lambda * overlap(A, ROI)
    4: case 2 + lambda * overlap(A, 1 - ROI) negated: penalises A outside the ROI, i.e. overlap(A * (1-ROI), 0)
    """
    g, a, lam = cfg.focal_gamma, cfg.focal_alpha, cfg.overlap_weight
    if cfg.roi_variant == 1:
        return focal_loss(pred, mask, g, a) + lam * overlap_loss(pred, roi)
    intersection = focal_loss(pred, mask * roi, g, a)
    if cfg.roi_variant == 2:
        return intersection
    if cfg.roi_variant == 3:
        return intersection + lam * overlap_loss(pred, roi)
    return intersection + lam * overlap_loss(pred * (1 - roi), torch.zeros_like(roi))
