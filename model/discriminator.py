"""Discriminator C: the generator's encoder, then flatten + linear to one real/fake logit."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Encoder
from model.config import NetConfig


class Discriminator(nn.Module):
    """Returns (logit, features); the features feed the adversarial feature-matching loss."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        widths = cfg.encoder_widths()
        self.encoder = Encoder(cfg.channels, widths, cfg.blocks_per_stage)
        self.classifier = nn.Linear(widths[-1] * cfg.latent_side() ** 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        return self.classifier(feat.flatten(1)).squeeze(1), feat
