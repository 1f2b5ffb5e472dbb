"""GANomaly encoder-decoder-encoder generator with a CRAE (convolutional) or DRAE (dense) bottleneck."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Encoder, Stage


class ConvBottleneck(nn.Module):
    """CRAE: a 1x1 conv squeezes the encoder output to ``latent_channels`` at 1/2^stages resolution."""

    def __init__(self, width: int, latent_channels: int) -> None:
        super().__init__()
        self.to_latent = nn.Conv2d(width, latent_channels, 1)
        self.from_latent = nn.Sequential(nn.Conv2d(latent_channels, width, 1), nn.LeakyReLU(0.2))

    def encode(self, feat: torch.Tensor) -> torch.Tensor:
        return self.to_latent(feat)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.from_latent(z)


class DenseBottleneck(nn.Module):
    """DRAE: 1x1 conv to ``squeeze`` channels, flatten -> Linear -> ``latent_dim`` vector, and back.

    The 1x1 squeeze keeps the dense layers at paper size tractable (512x16x16 flattened would need
    ~270 M weights per layer at 256 px).
    """

    def __init__(self, width: int, side: int, squeeze: int, latent_dim: int) -> None:
        super().__init__()
        self.shape = (squeeze, side, side)
        self.squeeze = nn.Conv2d(width, squeeze, 1)
        self.to_latent = nn.Linear(squeeze * side * side, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, squeeze * side * side), nn.LeakyReLU(0.2))
        self.expand = nn.Sequential(nn.Conv2d(squeeze, width, 1), nn.LeakyReLU(0.2))

    def encode(self, feat: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.squeeze(feat).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.expand(self.from_latent(z).view(z.shape[0], *self.shape))


def make_bottleneck(kind: str, width: int, latent_channels: int, latent_side: int, latent_dim: int) -> nn.Module:
    """``crae``: the fully convolutional bottleneck (any input size); ``dense``: GANomaly's vector latent, which
    fixes the input size to the training size."""
    if kind == "crae":
        return ConvBottleneck(width, latent_channels)
    return DenseBottleneck(width, latent_side, latent_channels, latent_dim)


class Decoder(nn.Module):
    """Upsampling residual stages (transposed conv k4 s2), 3x3 conv out, sigmoid to [0, 1]."""

    def __init__(self, channels: int, widths: list[int], blocks: int) -> None:
        super().__init__()
        rev = widths[::-1]
        outs = [*rev[1:], rev[-1]]
        self.stages = nn.Sequential(*[Stage(i, o, blocks, "up") for i, o in zip(rev, outs, strict=True)])
        self.head = nn.Sequential(
            nn.BatchNorm2d(outs[-1]), nn.LeakyReLU(0.2), nn.Conv2d(outs[-1], channels, 3, padding=1)
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.stages(feat)))


class Generator(nn.Module):
    """G(x) -> (z, x_hat, z_hat): encode, decode, re-encode the reconstruction (GANomaly)."""

    def __init__(
        self,
        *,
        channels: int,
        widths: list[int],
        blocks: int,
        bottleneck: str,
        latent_channels: int,
        latent_side: int,
        latent_dim: int,
    ) -> None:
        super().__init__()
        latent = (bottleneck, widths[-1], latent_channels, latent_side, latent_dim)
        self.encoder1 = Encoder(channels, widths, blocks)
        self.bottleneck1 = make_bottleneck(*latent)
        self.decoder = Decoder(channels, widths, blocks)
        self.encoder2 = Encoder(channels, widths, blocks)
        self.bottleneck2 = make_bottleneck(*latent)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Only x_hat: what inference needs (skips the second encoder)."""
        return self.decoder(self.bottleneck1.decode(self.bottleneck1.encode(self.encoder1(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.bottleneck1.encode(self.encoder1(x))
        x_hat = self.decoder(self.bottleneck1.decode(z))
        z_hat = self.bottleneck2.encode(self.encoder2(x_hat))
        return z, x_hat, z_hat
