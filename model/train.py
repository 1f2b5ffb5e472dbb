"""GRD-Net training: steps of three updates (model/train_step.py) on native-resolution patches, a time limit
planned in epochs (model/budget.py) and honoured at epoch boundaries, the epoch kept by self-validation on
held-out good images with synthetic marks, and a threshold calibrated on both."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.baseline import fit_baseline
from model.budget import Budget, cosine_factor
from model.calibration import calibrate
from model.checkpoint import CheckpointMeta, save_checkpoint
from model.config import GRDNetConfig
from model.dataset import DatasetError, EpochSampler, TrainSet, index_split, load_train_images, set_epoch
from model.grdnet import GRDNet, create_grdnet
from model.inference import score_images
from model.keeping import Selection, keep_weights, validate_epoch
from model.level import level_indices, normal_level
from model.roi_prior import encode_mask, fixed_roi
from model.train_speed import Precision, resolve_precision, to_memory_format, use_channels_last
from model.train_step import Optimisers, make_optimisers, segment_step, set_lr, train_step
from model.validation import build_validation_set


def split_holdout(n: int, cfg: GRDNetConfig, seed: int, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): a seeded slice of train/good kept out for self-validation and calibration."""
    tc = cfg.train
    order = np.random.default_rng(seed).permutation(n)
    if tc.holdout_fraction == 0:
        return order, order[:0]
    n_hold = max(tc.min_holdout, round(tc.holdout_fraction * n))
    if n - n_hold < 2:
        raise DatasetError(
            f"{where}: {n} good images are too few to hold {n_hold} out for validation and keep 2 for training; "
            f"add images (at least {n_hold + 2}) or lower train.min_holdout"
        )
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def make_loader(ds: TrainSet, cfg: GRDNetConfig, seed: int) -> DataLoader:
    """Batches of ``ds`` in the epoch ``set_epoch`` names; with ``train.loader_workers`` the synthesis runs in
    worker processes beside the training thread (each item's rng depends only on (seed, epoch, index), so the
    batches are the same). The workers persist across epochs: forked anew every epoch, an epoch's first step
    took 1.5-1.9 s instead of ~0.7 s (copy-on-write faults after the fork, as far as measured); over 10-minute
    ampoule runs on the EPYC an epoch averaged 12.56 s before, 12.41 s after (one run each: a small gain)."""
    workers = cfg.train.loader_workers
    return DataLoader(
        ds,
        batch_size=cfg.train.batch_size,
        sampler=EpochSampler(len(ds), seed),
        drop_last=len(ds) > cfg.train.batch_size,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=workers > 0,
    )


def run_epoch(
    model: GRDNet,
    opts: Optimisers,
    loader: DataLoader,
    cfg: GRDNetConfig,
    desc: str,
    progress: bool,
    *,
    lr_at: Callable[[int], float] | None = None,
    precision: Precision = "fp32",
    channels_last: bool = False,
    average: AveragedModel | None = None,
) -> dict:
    """One pass over ``loader``; the mean of each loss and the epoch's seconds. ``lr_at(step)``: the learning
    rate of each step (the budget schedule), else the schedulers step once at the end. ``average``: updated
    after every step."""
    e0 = time.monotonic()
    model.train()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for step, batch in enumerate(bar):
        if lr_at is not None:
            set_lr(opts, lr_at(step))
        batch = to_memory_format(batch, channels_last)
        if step % cfg.train.seg_updates == 0:  # a full step; every disc_every-th of them updates the discriminator
            disc_due = (step // cfg.train.seg_updates) % cfg.train.disc_every == 0
            losses = train_step(model, opts, batch, cfg, precision, update_disc=disc_due)
        else:
            losses = segment_step(model, opts, batch, cfg, precision)
        if average is not None:
            average.update_parameters(model)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
        bar.set_postfix({k: f"{losses[k]:.3f}" for k in ("d", "gen", "con", "seg") if k in losses})
    # each loss over the steps that computed it: the generator's over full steps, the discriminator's over its own
    means = {k: v / counts[k] for k, v in sums.items()}
    for sched in opts.schedulers:
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(means["total"])
        else:
            sched.step()
    means.update(seconds=time.monotonic() - e0, lr=opts.gen.param_groups[0]["lr"])
    return means


def train(
    data_dir: Path,
    out: Path,
    cfg: GRDNetConfig,
    max_minutes: float | None = None,
    seed: int = 0,
    whole_image_roi: bool = False,
    progress: bool = True,
    resize: bool = False,
    holdout_seed: int | None = None,
) -> CheckpointMeta:
    """Train on ``data_dir/train/good`` and write exactly ``out``; returns the checkpoint's metadata.

    ``holdout_seed`` (default ``seed``) picks the held-out good images and their validation marks: runs that
    share it are self-validated on the same set, so their figures compare (model/candidates.py)."""
    torch.manual_seed(seed)
    t0 = time.monotonic()
    cfg = cfg.model_copy(deep=True)  # self-validation may choose the smoothing kernel: never the caller's object
    net, tc = cfg.net, cfg.train
    model = create_grdnet(cfg)  # config errors before any data is read
    precision = resolve_precision(tc.precision)
    channels_last = use_channels_last(tc.channels_last, precision)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    samples = index_split(Path(data_dir), "train")
    hold_seed = seed if holdout_seed is None else holdout_seed
    train_idx, hold_idx = split_holdout(len(samples), cfg, hold_seed, Path(data_dir) / "train" / "good")
    images, rois = load_train_images(samples, net.image_size, net.channels, whole_image_roi, resize)
    ds = TrainSet(
        images=images[train_idx],
        rois=rois[train_idx],
        patch=net.train_size(),
        augment_cfg=cfg.augment,
        synth_cfg=cfg.synthesis,
        seed=seed,
    )
    loader = make_loader(ds, cfg, seed)
    inf = cfg.inference
    # the baseline always scores inside the prior; the model does unless inference.roi_prior is off
    baseline_roi = fixed_roi(rois[train_idx], inf.roi_prior_widen_px)
    prior = baseline_roi if inf.roi_prior else None
    level_frames = images[train_idx][level_indices(len(train_idx), inf.level_images)] if inf.level_images else None
    vs = (
        build_validation_set(images[hold_idx], rois[hold_idx], hold_seed, tc.val_defects_per_image)
        if len(hold_idx)
        else None
    )
    opts = make_optimisers(model, cfg)
    # the weights validated and kept: the raw ones, or their moving average (BatchNorm statistics are recomputed
    # for whichever is validated, so the average's own buffers never matter)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay)) if tc.ema_decay else None
    judged = average.module if average is not None else model
    history: list[dict] = []
    selection = Selection(tolerance=tc.keep_tolerance)
    stop_reason = "epochs"
    budget = Budget(tc.epochs, len(loader), None if max_minutes is None else max_minutes * 60)

    def validation_due(k: int, n: int) -> bool:
        """Is epoch ``k`` (from 1) of ``n`` validated: every validate_every-th past validate_from, and the last."""
        if vs is None or not tc.validate_every:
            return False
        return k == n or (k % tc.validate_every == 0 and k / n > tc.validate_from)

    def validations_between(done: int, n: int) -> int:
        return sum(validation_due(k, n) for k in range(done + 1, n + 1))

    # the work after the loop, in validations (the kept weights' level and calibration, scored in fp32): 20.3 s
    # after validations of 11.5 s in a bf16 ampoule run on the EPYC (1.8; planned as 1.5 until 2026-12-06)
    final = 2.0 if level_frames is not None else 0.0
    # under a time limit the lr anneals over the plan: a run ends on it unless the config asks otherwise
    stops_early = max_minutes is None or tc.early_stop_under_time_limit
    patience = tc.early_stop_patience if stops_early else 0
    for epoch in range(tc.epochs):
        set_epoch(loader, epoch)
        lr_at = None
        if tc.lr_schedule == "budget":

            def lr_at(step: int, epoch: int = epoch) -> float:
                return tc.lr * cosine_factor(budget.fraction(epoch, step), tc.cosine_floor)

        desc = f"epoch {epoch + 1}/{tc.epochs}"
        means = run_epoch(
            model, opts, loader, cfg, desc, progress,
            lr_at=lr_at, precision=precision, channels_last=channels_last, average=average,
        )  # fmt: skip
        means["epoch"] = epoch + 1
        history.append(means)
        line = f"epoch {epoch + 1}: " + " ".join(f"{k}={means[k]:.4f}" for k in ("d", "gen", "con", "seg"))
        # plan the epochs the time limit fits (model/budget.py); stop when they are done, or when the next epoch,
        # its validation and the work after the loop would no longer fit (a machine that slowed past the plan's
        # spare); the last epoch is validated whatever the cadence: it has the lowest lr
        epoch_times, val_times = [h["seconds"] for h in history], [c["seconds"] for c in selection.curve]
        out_of_time = budget.after_epoch(
            epoch + 1, time.monotonic() - t0, epoch_times, val_times, final, validations_between
        )
        last = epoch + 1 >= budget.total() or out_of_time
        due = validation_due(epoch + 1, budget.total())
        if vs is not None and tc.validate_every and (due or last):
            figures = validate_epoch(judged, loader, vs, level_frames, prior, cfg, epoch, selection, precision)
            line += f" | val image AUROC {figures['image_auroc']:.3f} (k{figures['kernel']})"
            line += f" pixel {figures['pixel_auroc']:.3f}"
            line += " COLLAPSED" if figures["collapsed"] else ""
        if progress:
            tqdm.write(line + f" ({means['seconds']:.1f} s, lr {means['lr']:.2e})")
        if patience and selection.since_best >= patience:
            stop_reason = f"early stop: no better self-validation in {patience} validations"
            break
        if last and epoch + 1 < tc.epochs:
            planned = f"{budget.total()} epochs planned"
            planned += f", revised from {budget.revised}" if budget.revised is not None else ""
            planned += f", lowered {budget.lowered}x" if budget.lowered else ""
            why = planned if epoch + 1 >= budget.total() else "next epoch would end past it"
            stop_reason = f"max-minutes {max_minutes} ({why})"
            break

    f0 = time.monotonic()  # the work after the loop, timed: the plan estimates it before it runs
    keep_weights(model, selection, average, loader, cfg)
    if level_frames is not None:  # the kept weights' normal level, from all the level frames
        good_maps = score_images(model, level_frames, prior)[1]
        level = normal_level(good_maps, cfg.inference.smoothing_kernel, inf.level_widen_px)
        model.score_level.copy_(torch.from_numpy(level))
    # the kept epoch's validation scores serve only when its level is the final one (no level frames) and they
    # were scored in float32, as the engines score (bf16 validation only ranks epochs)
    kept_scores = selection.scores if level_frames is None and precision == "fp32" else None
    threshold, calibration = calibrate(model, vs, kept_scores, images[train_idx], prior, tc)
    baseline = None
    if vs is not None:
        baseline = fit_baseline(baseline_roi, vs, tc.threshold_quantile, tc.threshold_margin, tc.max_val_escape)
    meta = CheckpointMeta(
        config=cfg,
        threshold=threshold,
        image_size=net.image_size,
        channels=net.channels,
        calibration=calibration,
        validation=None if selection.best is None else {"kept": selection.best, "curve": selection.curve},
        baseline=baseline,
        roi_prior_png=None if prior is None else encode_mask(prior),
        training=training_record(
            data_dir=data_dir,
            seed=seed,
            holdout_seed=hold_seed,
            history=history,
            stop=stop_reason,
            seconds=time.monotonic() - t0,
            final_seconds=time.monotonic() - f0,
            whole_image_roi=whole_image_roi,
            n_train=len(train_idx),
            n_holdout=len(hold_idx),
            precision=precision,
            channels_last=channels_last,
            cfg=cfg,
            budget=budget,
            selection=selection,
            steps_per_epoch=len(loader),
        ),
    )
    return save_checkpoint(Path(out), model, meta)


def training_record(
    *,
    data_dir: Path,
    seed: int,
    holdout_seed: int,
    history: list[dict],
    stop: str,
    seconds: float,
    final_seconds: float,
    whole_image_roi: bool,
    n_train: int,
    n_holdout: int,
    precision: str,
    channels_last: bool,
    cfg: GRDNetConfig,
    budget: Budget,
    selection: Selection,
    steps_per_epoch: int,
) -> dict:
    """The checkpoint's ``training`` record (docs/design.md): what ran, how long, and why it stopped."""
    losses = ("d", "gen", "con", "seg")
    return {
        "data": str(data_dir),
        "seed": seed,
        "holdout_seed": holdout_seed,
        "epochs_run": len(history),
        "stop": stop,
        "seconds": round(seconds, 1),
        "final_seconds": round(final_seconds, 1),
        "whole_image_roi": whole_image_roi,
        "n_train": n_train,
        "n_holdout": n_holdout,
        "precision": precision,
        "channels_last": channels_last,
        "ema_decay": cfg.train.ema_decay,
        "planned_epochs": budget.planned,
        "plan_lowered": budget.lowered,
        "plan_revised_from": budget.revised,
        "s_per_step": round(sum(h["seconds"] for h in history) / max(1, len(history) * steps_per_epoch), 3),
        "validations": len(selection.curve),
        "validation_seconds": round(sum(c["seconds"] for c in selection.curve), 1),
        "final": {k: history[-1][k] for k in losses},
        "first": {k: history[0][k] for k in losses},
    }
