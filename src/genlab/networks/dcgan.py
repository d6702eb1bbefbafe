"""DCGAN (Radford et al., 2016) generator and discriminator for square power-of-two images."""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.checks import require_positive
from genlab.networks.conditioning import (
    ClassEmbedding,
    ConditionalBatchNorm2d,
    check_labels,
    check_num_classes,
)


def _num_upsamplings(image_size: int) -> int:
    """Stages between the 4x4 seed and the image; sizes must be powers of two >= 8."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8 (e.g. 32, 64), got {image_size}")
    return int(math.log2(image_size)) - 2


def _init_weights(module: nn.Module) -> None:
    """The DCGAN paper's N(0, 0.02) initialisation."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) [, labels] -> images (B, channels, size, size) in [-1, 1].

    With ``num_classes > 0`` every BatchNorm is class-conditional (``ConditionalBatchNorm2d``):
    the label picks each layer's scale and shift. ``num_classes=0`` is the plain DCGAN.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        base_channels: int = 64,
        channels: int = 1,
        image_size: int = 32,
        num_classes: int = 0,
    ):
        super().__init__()
        require_positive(latent_dim=latent_dim, base_channels=base_channels, channels=channels)
        stages = _num_upsamplings(image_size)
        self.latent_dim = latent_dim
        self.channels = channels
        self.image_size = image_size
        self.num_classes = check_num_classes(num_classes)

        def norm(width: int) -> nn.Module:
            if num_classes:
                return ConditionalBatchNorm2d(width, num_classes)
            return nn.BatchNorm2d(width)

        width = base_channels * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            norm(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                norm(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        x = z.view(z.shape[0], -1, 1, 1)
        if labels is None:
            return self.net(x)
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class DCGANDiscriminator(nn.Module):
    """images (B, channels, size, size) [, labels] -> one real/fake logit per image (B,).

    With ``num_classes > 0`` it is a projection discriminator (Miyato & Koyama, 2018): the
    logit gains the inner product of the label's embedding with D's pooled last features.
    """

    def __init__(
        self, base_channels: int = 64, channels: int = 1, image_size: int = 32, num_classes: int = 0
    ):
        super().__init__()
        require_positive(base_channels=base_channels, channels=channels)
        stages = _num_upsamplings(image_size)
        self.num_classes = check_num_classes(num_classes)
        width = base_channels
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)
        if num_classes:
            self.projection = ClassEmbedding(num_classes, width, std=0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        if labels is None:
            return self.net(images).flatten()
        features = self.net[:-1](images)
        pooled = features.sum(dim=(2, 3))
        return self.net[-1](features).flatten() + (self.projection(labels) * pooled).sum(dim=1)
