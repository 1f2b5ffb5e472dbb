"""Discriminator C: the generator's encoder, then flatten + linear to one real/fake logit."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Encoder


class Discriminator(nn.Module):
    """Returns (logit, features); the features feed the adversarial feature-matching loss."""

    def __init__(self, *, channels: int, widths: list[int], blocks: int, latent_side: int) -> None:
        super().__init__()
        self.encoder = Encoder(channels, widths, blocks)
        self.classifier = nn.Linear(widths[-1] * latent_side**2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        return self.classifier(feat.flatten(1)).squeeze(1), feat
