"""Discriminative U-Net: concat(input, reconstruction) -> one anomaly-map channel (logits)."""

from __future__ import annotations

import math

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Levels of ``widths`` with skips and a ``middle`` bottleneck (authors' code: 64/128/256, middle 512)."""

    def __init__(self, in_channels: int, widths: list[int], middle: int, prior: float | None = None) -> None:
        super().__init__()
        ins = [in_channels, *widths[:-1]]
        self.down = nn.ModuleList(DoubleConv(i, o) for i, o in zip(ins, widths, strict=True))
        self.pool = nn.MaxPool2d(2)
        self.middle = DoubleConv(widths[-1], middle)
        ups_in = [middle, *widths[::-1][:-1]]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(i, o, 2, stride=2) for i, o in zip(ups_in, widths[::-1], strict=True)
        )
        self.fuse = nn.ModuleList(DoubleConv(2 * w, w) for w in widths[::-1])
        self.head = nn.Conv2d(widths[0], 1, 1)
        if prior is not None:
            # focal-loss prior (Lin et al. 2017, 4.1): every pixel starts at p = prior, not 0.5, so the many
            # good pixels do not dominate early training and the map starts from a low floor
            nn.init.constant_(self.head.bias, -math.log((1 - prior) / prior))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.middle(x)
        for up, fuse, skip in zip(self.up, self.fuse, reversed(skips), strict=True):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return self.head(x)
