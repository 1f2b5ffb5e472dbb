"""One GRD-Net training step: the three updates (discriminator; generator with the discriminator frozen; U-Net on
the detached reconstruction) and the optimisers they use. The loop around them is model/train.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.config import GRDNetConfig
from model.grdnet import GRDNet
from model.losses import (
    adversarial_loss,
    contextual_loss,
    discriminator_loss,
    encoder_loss,
    roi_focal_loss,
)
from model.train_speed import Precision, fp32, step_autocast


@dataclass
class Optimisers:
    gen: torch.optim.Adam
    disc: torch.optim.Adam
    seg: torch.optim.Adam
    schedulers: list = field(default_factory=list)


def make_optimisers(model: GRDNet, cfg: GRDNetConfig) -> Optimisers:
    t = cfg.train

    def adam(params) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=t.lr, betas=(t.beta1, t.beta2))

    opts = Optimisers(
        adam(model.generator.parameters()), adam(model.discriminator.parameters()), adam(model.unet.parameters())
    )

    def schedule(o: torch.optim.Adam):
        if t.lr_schedule == "cosine":  # stepped once per epoch; a --max-minutes stop ends the curve early
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                o, T_max=max(1, t.epochs - 1), eta_min=t.lr * t.cosine_floor
            )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=t.plateau_factor, patience=t.plateau_patience)

    if t.lr_schedule != "budget":  # budget: set every step by run_epoch, not stepped per epoch
        opts.schedulers = [schedule(o) for o in (opts.gen, opts.disc, opts.seg)]
    return opts


def set_lr(opts: Optimisers, lr: float) -> None:
    for o in (opts.gen, opts.disc, opts.seg):
        for group in o.param_groups:
            group["lr"] = lr


def _reinit_discriminator(model: GRDNet, opts: Optimisers) -> None:
    """GANomaly: a discriminator whose loss collapsed has won; start it again so it keeps teaching G."""
    for m in model.discriminator.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    opts.disc.state.clear()


def train_step(
    model: GRDNet,
    opts: Optimisers,
    batch: tuple[torch.Tensor, ...],
    cfg: GRDNetConfig,
    precision: Precision = "fp32",
    update_disc: bool = True,
) -> dict:
    """One step of the three updates; forward passes in ``precision`` (model/train_speed.py), losses in float32.
    ``update_disc`` False (``train.disc_every``): the discriminator does not move; the generator still learns
    from its features."""
    x, x_noisy, mask, roi = batch
    lc = cfg.loss
    with step_autocast(precision):
        z, x_hat, z_hat = model.generator(x_noisy)
    z, x_hat, z_hat = fp32(z, x_hat, z_hat)

    # 1. discriminator on real x vs the (detached) reconstruction
    disc: dict[str, float] = {}
    if update_disc:
        with step_autocast(precision):
            logit_real, _ = model.discriminator(x)
            logit_fake, _ = model.discriminator(x_hat.detach())
        loss_d = discriminator_loss(*fp32(logit_real, logit_fake))
        opts.disc.zero_grad(set_to_none=True)
        loss_d.backward()
        opts.disc.step()
        reinit = loss_d.item() < lc.disc_reinit_below
        if reinit:
            _reinit_discriminator(model, opts)
        disc = {"d": loss_d.item(), "d_reinit": float(reinit)}

    # 2. generator with the discriminator frozen
    model.discriminator.requires_grad_(False)
    with step_autocast(precision):
        _, feat_real = model.discriminator(x)
        _, feat_fake = model.discriminator(x_hat)
    l_adv = adversarial_loss(*fp32(feat_real, feat_fake))
    l_con = contextual_loss(x, x_hat, lc)
    l_enc = encoder_loss(z, z_hat)
    loss_g = lc.w_adv * l_adv + lc.w_con * l_con + lc.w_enc * l_enc
    opts.gen.zero_grad(set_to_none=True)
    loss_g.backward()
    opts.gen.step()
    model.discriminator.requires_grad_(True)

    # 3. discriminative U-Net on (noisy input, detached reconstruction), ROI focal loss
    loss_s = _segment_update(model, opts, x_noisy, x_hat.detach(), mask, roi, cfg, precision)
    return {
        **disc,
        "adv": l_adv.item(),
        "con": l_con.item(),
        "enc": l_enc.item(),
        "gen": loss_g.item(),
        "seg": loss_s.item(),
        "total": loss_g.item() + loss_s.item(),
    }


def _segment_update(
    model: GRDNet,
    opts: Optimisers,
    x_noisy: torch.Tensor,
    x_hat: torch.Tensor,
    mask: torch.Tensor,
    roi: torch.Tensor,
    cfg: GRDNetConfig,
    precision: Precision,
) -> torch.Tensor:
    with step_autocast(precision):
        logits = model.segment_logits(x_noisy, x_hat)
    loss_s = roi_focal_loss(torch.sigmoid(*fp32(logits)), mask, roi, cfg.loss)
    opts.seg.zero_grad(set_to_none=True)
    loss_s.backward()
    opts.seg.step()
    return loss_s


def segment_step(
    model: GRDNet, opts: Optimisers, batch: tuple[torch.Tensor, ...], cfg: GRDNetConfig, precision: Precision = "fp32"
) -> dict:
    """The U-Net's update alone (``train.seg_updates`` > 1): the generator reconstructs without a gradient, and
    neither its weights nor the discriminator's move (its BatchNorm running statistics do, as in a full step;
    they are recomputed before every validation). The map is the U-Net's, and a full step spends ~80 % of its
    time on the generator and discriminator, so extra U-Net updates buy the map more learning per second."""
    _, x_noisy, mask, roi = batch  # the clean image is the generator's target: unused here
    with torch.no_grad(), step_autocast(precision):
        _, x_hat, _ = model.generator(x_noisy)
    loss_s = _segment_update(model, opts, x_noisy, fp32(x_hat)[0], mask, roi, cfg, precision)
    return {"seg": loss_s.item()}
