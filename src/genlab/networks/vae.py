"""Convolutional VAE encoder and decoder for square power-of-two images."""

from __future__ import annotations

import torch
from torch import nn

from genlab.checks import require_positive
from genlab.networks.conditioning import check_num_classes, class_weights
from genlab.networks.dcgan import _num_upsamplings

DECODER_OUTPUTS = ("sigmoid", "tanh")


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]


def _with_classes(x: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """The conditional VAE's one-hot path (Sohn et al., 2015): the label's class weights
    concatenated to a flat input; ``x`` itself when unconditional."""
    weights = class_weights(labels, num_classes, x.dtype)
    return x if weights is None else torch.cat([x, weights], dim=1)


class ConvEncoder(nn.Module):
    """images (B, C, S, S) in [-1, 1] [, labels] -> (mean, log_variance), each (B, latent_dim).

    With ``num_classes > 0`` the label's one-hot row joins the flattened features (a CVAE's
    q(z | x, y)), so z need not spend capacity on the class.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        base_channels: int = 32,
        channels: int = 1,
        image_size: int = 32,
        num_classes: int = 0,
    ):
        super().__init__()
        require_positive(latent_dim=latent_dim, base_channels=base_channels, channels=channels)
        stages = _num_upsamplings(image_size)
        self.num_classes = check_num_classes(num_classes)
        width = base_channels
        layers = _conv_block(channels, width)
        for _ in range(stages - 1):
            layers += _conv_block(width, width * 2)
            width *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.to_moments = nn.Linear(width * 4 * 4 + num_classes, 2 * latent_dim)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = _with_classes(self.features(images), labels, self.num_classes)
        mean, log_variance = self.to_moments(features).chunk(2, dim=1)
        return mean, log_variance


class ConvDecoder(nn.Module):
    """z (B, latent_dim) -> images (B, C, S, S) in [-1, 1]; the generator evaluation samples.

    ``decode`` gives the raw distribution parameters the likelihood scores: logits when
    ``output="sigmoid"`` (Bernoulli), a pre-tanh mean when ``output="tanh"`` (Gaussian or
    discretized logistic). ``forward`` maps them to the image the likelihood's mean describes.
    With ``num_classes > 0`` it is a CVAE's p(x | z, y): the label's one-hot row joins z.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        base_channels: int = 32,
        channels: int = 1,
        image_size: int = 32,
        output: str = "sigmoid",
        num_classes: int = 0,
    ):
        super().__init__()
        require_positive(latent_dim=latent_dim, base_channels=base_channels, channels=channels)
        self.num_classes = check_num_classes(num_classes)
        if output not in DECODER_OUTPUTS:
            raise ValueError(f"decoder output must be one of {DECODER_OUTPUTS}, got {output!r}")
        stages = _num_upsamplings(image_size)
        self.latent_dim = latent_dim
        self.channels = channels
        self.image_size = image_size
        self.output = output
        width = base_channels * 2 ** (stages - 1)
        self.from_latent = nn.Sequential(
            nn.Linear(latent_dim + num_classes, width * 4 * 4), nn.ReLU()
        )
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

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        seed = self.from_latent(_with_classes(z, labels, self.num_classes))
        return self.net(seed.view(z.shape[0], self.seed_channels, 4, 4))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.decode(z, labels)
        if self.output == "sigmoid":
            return torch.sigmoid(raw) * 2 - 1
        return torch.tanh(raw)
