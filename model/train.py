"""GRD-Net training: three updates per step (discriminator; generator with C frozen; U-Net on the detached
reconstruction), reduce-on-plateau schedule, a wall-clock budget honoured at epoch boundaries, and a
threshold calibrated on held-out good images."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.checkpoint import Calibration, CheckpointMeta, save_checkpoint
from model.config import GRDNetConfig
from model.dataset import TrainSet, index_split, read_image
from model.grdnet import GRDNet, create_grdnet
from model.inference import calibrate_threshold, score_images
from model.losses import (
    adversarial_loss,
    contextual_loss,
    discriminator_loss,
    encoder_loss,
    roi_focal_loss,
)


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

    opts.schedulers = [schedule(o) for o in (opts.gen, opts.disc, opts.seg)]
    return opts


def _reinit_discriminator(model: GRDNet, opts: Optimisers) -> None:
    """GANomaly: a discriminator whose loss collapsed has won; start it again so it keeps teaching G."""
    for m in model.discriminator.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    opts.disc.state.clear()


def train_step(model: GRDNet, opts: Optimisers, batch: tuple[torch.Tensor, ...], cfg: GRDNetConfig) -> dict:
    x, x_noisy, mask, roi = batch
    lc = cfg.loss
    z, x_hat, z_hat = model.generator(x_noisy)

    # 1. discriminator on real x vs the (detached) reconstruction
    logit_real, _ = model.discriminator(x)
    logit_fake, _ = model.discriminator(x_hat.detach())
    loss_d = discriminator_loss(logit_real, logit_fake)
    opts.disc.zero_grad(set_to_none=True)
    loss_d.backward()
    opts.disc.step()
    reinit = loss_d.item() < lc.disc_reinit_below
    if reinit:
        _reinit_discriminator(model, opts)

    # 2. generator with the discriminator frozen
    model.discriminator.requires_grad_(False)
    _, feat_real = model.discriminator(x)
    _, feat_fake = model.discriminator(x_hat)
    l_adv = adversarial_loss(feat_real, feat_fake)
    l_con = contextual_loss(x, x_hat, lc)
    l_enc = encoder_loss(z, z_hat)
    loss_g = lc.w_adv * l_adv + lc.w_con * l_con + lc.w_enc * l_enc
    opts.gen.zero_grad(set_to_none=True)
    loss_g.backward()
    opts.gen.step()
    model.discriminator.requires_grad_(True)

    # 3. discriminative U-Net on (noisy input, detached reconstruction), ROI focal loss
    pred = torch.sigmoid(model.segment_logits(x_noisy, x_hat.detach()))
    loss_s = roi_focal_loss(pred, mask, roi, lc)
    opts.seg.zero_grad(set_to_none=True)
    loss_s.backward()
    opts.seg.step()
    return {
        "d": loss_d.item(),
        "adv": l_adv.item(),
        "con": l_con.item(),
        "enc": l_enc.item(),
        "gen": loss_g.item(),
        "seg": loss_s.item(),
        "total": loss_g.item() + loss_s.item(),
        "d_reinit": float(reinit),
    }


@torch.no_grad()
def recompute_bn_statistics(model: GRDNet, loader: Iterable, passes: int) -> None:
    """Replace every BatchNorm running mean/variance by its exact average over ``passes`` of the training data,
    fed as in training (synthetic anomalies; generator, then U-Net on the reconstruction).

    Running statistics are a 0.1-momentum trace of the last few batches; with lr 1e-3 to the end they lag the
    weights, and the eval-mode network can differ badly from the trained one (measured: one seed scored 0.53
    image AUROC with the trace and 0.93 with recomputed statistics)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if passes == 0 or not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    dataset = getattr(loader, "dataset", None)
    first_epoch = dataset.epoch + 1 if isinstance(dataset, TrainSet) else 0
    for p in range(passes):
        if isinstance(dataset, TrainSet):
            dataset.epoch = first_epoch + p  # fresh synthetic anomalies each pass, as a new epoch would get
        for _x, x_noisy, _mask, _roi in loader:
            _, x_hat, _ = model.generator(x_noisy)
            model.segment_logits(x_noisy, x_hat)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def split_holdout(n: int, cfg: GRDNetConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): a seeded slice of train/good kept out for threshold calibration."""
    t = cfg.train
    order = np.random.default_rng(seed).permutation(n)
    if t.holdout_fraction == 0:
        return order, order[:0]
    n_hold = max(t.min_holdout, round(t.holdout_fraction * n))
    if n - n_hold < 2:
        raise ValueError(f"{n} training images are too few to hold {n_hold} out for calibration")
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def train(
    data_dir: Path,
    out: Path,
    cfg: GRDNetConfig,
    max_minutes: float | None = None,
    seed: int = 0,
    whole_image_roi: bool = False,
    progress: bool = True,
) -> CheckpointMeta:
    """Train on ``data_dir/train/good`` and write exactly ``out``; returns the checkpoint's metadata."""
    torch.manual_seed(seed)
    t0 = time.monotonic()
    samples = index_split(Path(data_dir), "train")
    train_idx, hold_idx = split_holdout(len(samples), cfg, seed)
    net = cfg.net
    ds = TrainSet(
        [samples[i] for i in train_idx], net.image_size, net.channels, cfg.augment, cfg.synthesis, seed, whole_image_roi
    )
    loader = DataLoader(
        ds,
        batch_size=cfg.train.batch_size,
        shuffle=True,
        drop_last=len(ds) > cfg.train.batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    # no channels_last: its CPU backward segfaults for some small widths (torch 2.13, seen at base width 8)
    model = create_grdnet(cfg).train()
    opts = make_optimisers(model, cfg)
    history: list[dict] = []
    stop_reason = "epochs"
    for epoch in range(cfg.train.epochs):
        ds.epoch = epoch
        e0 = time.monotonic()
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not progress, leave=False)
        for batch in bar:
            losses = train_step(model, opts, batch, cfg)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{losses[k]:.3f}" for k in ("d", "gen", "con", "seg")})
        means = {k: v / len(loader) for k, v in sums.items()}
        for sched in opts.schedulers:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(means["total"])
            else:
                sched.step()
        means.update(epoch=epoch + 1, seconds=time.monotonic() - e0, lr=opts.gen.param_groups[0]["lr"])
        history.append(means)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: "
                + " ".join(f"{k}={means[k]:.4f}" for k in ("d", "gen", "con", "seg"))
                + f" ({means['seconds']:.1f} s)"
            )
        elapsed = time.monotonic() - t0
        slowest = max(h["seconds"] for h in history)  # predict the next epoch by the slowest so far
        if max_minutes is not None and elapsed + slowest > max_minutes * 60 and epoch + 1 < cfg.train.epochs:
            stop_reason = f"max-minutes {max_minutes} (next epoch would end past it)"
            break

    recompute_bn_statistics(model, loader, cfg.train.precise_bn_passes)
    model.eval()
    tc = cfg.train
    calib_idx = hold_idx if len(hold_idx) else train_idx
    calib = np.stack([read_image(samples[i].path, net.image_size, net.channels) for i in calib_idx])
    scores, _ = score_images(model, calib)
    threshold = calibrate_threshold(scores, tc.threshold_quantile, tc.threshold_margin)
    meta = CheckpointMeta(
        config=cfg,
        threshold=threshold,
        image_size=net.image_size,
        channels=net.channels,
        calibration=Calibration(
            quantile=tc.threshold_quantile,
            margin=tc.threshold_margin,
            n_holdout=len(hold_idx),
            holdout_quantile_score=float(np.quantile(scores, tc.threshold_quantile)),
            holdout_max_score=float(scores.max()),
        ),
        training={
            "data": str(data_dir),
            "seed": seed,
            "epochs_run": len(history),
            "stop": stop_reason,
            "seconds": round(time.monotonic() - t0, 1),
            "whole_image_roi": whole_image_roi,
            "precise_bn_passes": cfg.train.precise_bn_passes,
            "n_train": len(train_idx),
            "final": {k: history[-1][k] for k in ("d", "gen", "con", "seg")},
            "first": {k: history[0][k] for k in ("d", "gen", "con", "seg")},
        },
    )
    meta = save_checkpoint(Path(out), model, meta)
    if not math.isfinite(threshold):
        raise ValueError("calibrated threshold is not finite: training diverged")
    return meta
