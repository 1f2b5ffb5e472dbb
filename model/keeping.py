"""Which weights a training run keeps: every validated epoch is self-validated with fresh BatchNorm statistics
and offered to a ``Selection``, which keeps the best; at the end ``keep_weights`` loads them (docs/model.md)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from model.config import GRDNetConfig
from model.dataset import loader_epoch, set_epoch
from model.grdnet import GRDNet
from model.inference import score_images
from model.train_speed import Precision
from model.validation import validate


@torch.no_grad()
def recompute_bn_statistics(model: GRDNet, loader: DataLoader, batches: int, epoch_tag: int) -> None:
    """Replace every BatchNorm running mean/variance by its exact average over ``batches`` training batches,
    fed as in training (synthetic anomalies; generator, then U-Net on the reconstruction).

    Running statistics are a 0.1-momentum trace of the last few batches; with lr 1e-3 they lag the weights,
    and the eval-mode network can differ badly from the trained one (measured: one seed scored 0.53 image
    AUROC with the trace and 0.93 with recomputed statistics). ``epoch_tag`` seeds fresh anomalies."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if batches == 0 or not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    epoch, seen, tag = loader_epoch(loader), 0, epoch_tag
    while seen < batches:
        set_epoch(loader, tag)
        for _x, x_noisy, _mask, _roi in loader:
            _, x_hat, _ = model.generator(x_noisy)
            model.segment_logits(x_noisy, x_hat)
            seen += 1
            if seen == batches:
                break
        tag += 1
    set_epoch(loader, epoch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@dataclass
class Selection:
    """The self-validated epoch kept so far: its weights, figures and the curve of every validation.

    ``tolerance`` > 0: a later sound validation whose image AUROC is within ``tolerance`` of the best one seen
    replaces the kept epoch: its weights had more steps at a lower lr, and a difference smaller than what one
    of the ~40 marked frames moves is noise (the strict best kept epoch 20 of 28 on a run whose curve was flat)."""

    tolerance: float = 0.0
    curve: list[dict] = field(default_factory=list)
    best: dict | None = None
    state: dict | None = None
    scores: np.ndarray | None = None  # the best validation's scores: calibration needs no second pass
    since_best: int = 0

    def offer(self, model: GRDNet, figures: dict, scores: np.ndarray | None = None) -> None:
        self.curve.append(figures)
        best, sound = self.best, not figures["collapsed"]
        if best is None or sound != (not best["collapsed"]):
            take = sound or best is None  # a sound epoch always wins over a collapsed one
        elif sound and self.tolerance:  # against the best sound figure seen (this one included), not the kept one
            peak = max(c["image_auroc"] for c in self.curve if not c["collapsed"])
            take = figures["image_auroc"] >= peak - self.tolerance
        else:
            take = (figures["image_auroc"], figures["pixel_auroc"]) > (best["image_auroc"], best["pixel_auroc"])
        if take:
            self.best, self.since_best, self.scores = figures, 0, scores
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.since_best += 1


def validate_epoch(
    judged: torch.nn.Module,
    loader: DataLoader,
    vs,
    level_frames: np.ndarray | None,
    prior: np.ndarray | None,
    cfg: GRDNetConfig,
    epoch: int,
    selection: Selection,
    precision: Precision = "fp32",
) -> dict:
    """Self-validate the weights being judged after ``epoch`` (from 0) and offer them to ``selection``; returns
    the figures. BatchNorm statistics are recomputed first: eval mode must see the weights' own. ``precision``:
    the training's, in which the frames are scored (model/train_speed.py)."""
    tc, inf = cfg.train, cfg.inference
    v0 = time.monotonic()
    recompute_bn_statistics(judged, loader, tc.bn_batches, epoch_tag=100_000 + epoch)
    judged.eval()
    good_maps = None
    if level_frames is not None:  # half the level frames: a validation every other epoch must stay cheap
        good_maps = score_images(judged, level_frames[: max(1, len(level_frames) // 2)], prior, precision=precision)[1]
    widths = tc.level_widen_choices or inf.level_widen_px
    figures, val_scores = validate(judged, vs, tc.smoothing_kernels, prior, good_maps, widths, precision)
    figures.update(epoch=epoch + 1, seconds=round(time.monotonic() - v0, 1))
    selection.offer(judged, figures, val_scores)
    return figures


def keep_weights(
    model: GRDNet, selection: Selection, average: AveragedModel | None, loader: DataLoader, cfg: GRDNetConfig
) -> None:
    """Load the weights the checkpoint keeps into ``model`` (eval mode, contiguous tensors): the best validated
    epoch with its smoothing kernel and level widening, or without validation the last (averaged) weights with
    fresh BatchNorm statistics."""
    model.to(memory_format=torch.contiguous_format)  # the checkpoint's tensors are plain contiguous ones
    if selection.state is not None:
        model.load_state_dict(selection.state)
        cfg.inference.smoothing_kernel = selection.best["kernel"]  # the graph and the checkpoint use this one
        cfg.inference.level_widen_px = selection.best.get("level_widen_px", cfg.inference.level_widen_px)
    else:
        if average is not None:
            model.load_state_dict(average.module.state_dict())
        recompute_bn_statistics(model, loader, cfg.train.bn_batches, epoch_tag=200_000)
    model.eval()
