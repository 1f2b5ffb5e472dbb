"""Residual building blocks (ResNet-V2, pre-activation) shared by every GRD-Net sub-network."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Resample = Literal["none", "down", "up"]


def _norm_act(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=False))


class ResidualBlock(nn.Module):
    """BN-LReLU-conv3x3 twice; a projection shortcut when the shape changes.

    ``down`` strides the first conv by 2; ``up`` replaces it with a k4/s2 transposed conv (the decoder).
    """

    def __init__(self, cin: int, cout: int, resample: Resample = "none") -> None:
        super().__init__()
        self.pre = _norm_act(cin)
        if resample == "up":
            self.conv1: nn.Module = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        else:
            stride = 2 if resample == "down" else 1
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.mid = _norm_act(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        if resample == "up":
            self.shortcut: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 1, bias=False)
            )
        elif resample == "down" or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=2 if resample == "down" else 1, bias=False)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        out = self.conv2(self.mid(self.conv1(h)))
        return out + self.shortcut(x)


class Stage(nn.Sequential):
    """``blocks`` residual blocks; the resampling happens on the last one (as in the paper's Fig. 5)."""

    def __init__(self, cin: int, cout: int, blocks: int, resample: Resample) -> None:
        layers = [ResidualBlock(cin, cin) for _ in range(blocks - 1)]
        layers.append(ResidualBlock(cin, cout, resample))
        super().__init__(*layers)


class Encoder(nn.Module):
    """Stem conv then one downsampling stage per width: ``[B, C, S, S] -> [B, widths[-1], S/2^n, S/2^n]``."""

    def __init__(self, channels: int, widths: list[int], blocks: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        ins = [widths[0], *widths[:-1]]
        self.stages = nn.Sequential(*[Stage(i, o, blocks, "down") for i, o in zip(ins, widths, strict=True)])
        self.post = _norm_act(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.stages(self.stem(x)))
