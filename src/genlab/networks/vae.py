"""Convolutional VAE encoder and decoder for square power-of-two images."""

from __future__ import annotations

import torch
from torch import nn

from genlab.checks import require_positive
from genlab.networks.dcgan import _num_upsamplings

DECODER_OUTPUTS = ("sigmoid", "tanh")


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]


class ConvEncoder(nn.Module):
    """images (B, C, S, S) in [-1, 1] -> (mean, log_variance), each (B, latent_dim)."""

    def __init__(
        self, latent_dim: int = 32, base_channels: int = 32, channels: int = 1, image_size: int = 32
    ):
        super().__init__()
        require_positive(latent_dim=latent_dim, base_channels=base_channels, channels=channels)
        stages = _num_upsamplings(image_size)
        width = base_channels
        layers = _conv_block(channels, width)
        for _ in range(stages - 1):
            layers += _conv_block(width, width * 2)
            width *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.to_moments = nn.Linear(width * 4 * 4, 2 * latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.to_moments(self.features(images)).chunk(2, dim=1)
        return mean, log_variance


class ConvDecoder(nn.Module):
    """z (B, latent_dim) -> images (B, C, S, S) in [-1, 1]; the generator evaluation samples.

    ``decode`` gives the raw distribution parameters the likelihood scores: logits when
    ``output="sigmoid"`` (Bernoulli), a pre-tanh mean when ``output="tanh"`` (Gaussian or
    discretized logistic). ``forward`` maps them to the image the likelihood's mean describes.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        base_channels: int = 32,
        channels: int = 1,
        image_size: int = 32,
        output: str = "sigmoid",
    ):
        super().__init__()
        require_positive(latent_dim=latent_dim, base_channels=base_channels, channels=channels)
        if output not in DECODER_OUTPUTS:
            raise ValueError(f"decoder output must be one of {DECODER_OUTPUTS}, got {output!r}")
        stages = _num_upsamplings(image_size)
        self.latent_dim = latent_dim
        self.channels = channels
        self.image_size = image_size
        self.output = output
        width = base_channels * 2 ** (stages - 1)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, width * 4 * 4), nn.ReLU())
        self.seed_channels = width
        layers: list[nn.Module] = []
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(),
            ]
            width //= 2
        layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        seed = self.from_latent(z).view(z.shape[0], self.seed_channels, 4, 4)
        return self.net(seed)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raw = self.decode(z)
        if self.output == "sigmoid":
            return torch.sigmoid(raw) * 2 - 1
        return torch.tanh(raw)
