"""GRD-Net: generator + discriminator + discriminative U-Net, built from one config (``create_grdnet``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import GRDNetConfig
from model.discriminator import Discriminator
from model.errors import InputError
from model.generator import Generator
from model.unet import UNet


class GRDNet(nn.Module):
    """The three trainable parts; ``anomaly_map`` is the inference path (reconstruct, then segment)."""

    def __init__(self, cfg: GRDNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        net = cfg.net
        # the one place the config becomes the blocks' plain arguments
        trunk = dict(channels=net.channels, widths=net.encoder_widths(), blocks=net.blocks_per_stage)
        self.generator = Generator(
            **trunk,
            bottleneck=net.bottleneck,
            latent_channels=net.latent_channels,
            latent_side=net.latent_side(),
            latent_dim=net.latent_dim,
        )
        self.discriminator = Discriminator(**trunk, latent_side=net.latent_side())
        self.unet = UNet(2 * net.channels, net.unet_widths, net.unet_middle, net.unet_prior)
        # the normal level: per pixel, the highest the smoothed map reached on good training frames (widened for
        # jitter); the image score is the largest excess over it. Zeros until training sets it (model/level.py).
        self.register_buffer("score_level", torch.zeros(net.image_size, net.image_size))

    def segment_logits(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x, x_hat], dim=1))

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """x in [0, 1], ``[B, C, S, S]`` -> map in [0, 1], ``[B, S, S]`` (the learned attention, no static ROI)."""
        x_hat = self.generator.reconstruct(x)
        return torch.sigmoid(self.segment_logits(x, x_hat)).squeeze(1)


def smooth_and_score(
    maps: torch.Tensor, kernel: int, level: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, H, W]`` maps -> (scores ``[B]``, smoothed maps): the score is the max of the kernel x kernel
    mean-filtered map, less the normal ``level`` ``[H, W]`` where one is given (what good frames reach there).

    Zero padding at the border with count_include_pad, so the filter is one fixed conv the ONNX graph
    and TensorRT run the same way.
    """
    smoothed = F.avg_pool2d(maps.unsqueeze(1), kernel, stride=1, padding=kernel // 2, count_include_pad=True)
    smoothed = smoothed.squeeze(1)
    excess = smoothed if level is None else smoothed - level
    return excess.flatten(1).amax(dim=1), smoothed


def create_grdnet(cfg: GRDNetConfig) -> GRDNet:
    net = cfg.net
    if net.patch_size is not None:
        if net.patch_size > net.image_size:
            raise InputError(f"net.patch_size {net.patch_size} is larger than net.image_size {net.image_size}")
        if net.bottleneck == "drae" and net.patch_size != net.image_size:
            raise InputError(
                "net.patch_size: the dense (drae) bottleneck is not fully convolutional; train whole frames"
            )
        if net.patch_size % 2**net.stages or net.patch_size % 2 ** len(net.unet_widths):
            raise InputError(f"net.patch_size {net.patch_size} must be divisible by 2^stages and 2^unet levels")
    if net.image_size % 2**net.stages:
        raise InputError(f"net.image_size {net.image_size} must be divisible by 2^stages = {2**net.stages}")
    if net.image_size % 2 ** len(net.unet_widths):
        raise InputError(f"net.image_size {net.image_size} must be divisible by 2^{len(net.unet_widths)}")
    return GRDNet(cfg)
