"""A small CNN classifier for the domain's own images.

FID / IS / KID need a feature extractor; Inception is slow on CPU (~8 img/s) and was trained on
natural photos, so for 32x32 digits a tiny classifier trained on the dataset itself gives a
faster and more discriminative feature space. The same preprocessing (``to_classifier_input``)
is used for training and for metric extraction, so the two can never drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.checks import require_positive

_BASE_CHANNELS = 32  # fixed, so a saved config fully describes the architecture


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv-BN-ReLU, then halve the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class DomainClassifier(nn.Module):
    """uint8-derived images in [-1, 1], (B, in_channels, S, S) -> logits (B, num_classes).

    ``features`` returns the penultimate ``feature_dim`` vector used for FID / KID.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        feature_dim: int = 128,
        image_size: int = 32,
    ):
        super().__init__()
        require_positive(
            in_channels=in_channels,
            num_classes=num_classes,
            feature_dim=feature_dim,
            image_size=image_size,
        )
        if image_size % 8:
            raise ValueError(f"image_size must be divisible by 8 (e.g. 32), got {image_size}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.image_size = image_size
        width = _BASE_CHANNELS
        self.body = nn.Sequential(
            _conv_block(in_channels, width),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 4 * width),
            nn.Flatten(),
        )
        flat = 4 * width * (image_size // 8) ** 2
        self.embed = nn.Sequential(nn.Linear(flat, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ValueError(f"expected input (B, {shape}), got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim): the space FID and KID are measured in."""
        self._check_input(x)
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# how images of another size are resized to the classifier's input (recorded with every score)
INPUT_RESIZE = {"mode": "bilinear", "align_corners": False}


def to_classifier_input(images: torch.Tensor, in_channels: int, image_size: int) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float in [-1, 1], (B, in_channels, image_size, image_size).

    Grey <-> RGB by channel mean / repetition and bilinear resizing, so samples of any size and
    channel count are judged in the classifier's own input format.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    x = images.to(torch.float32) / 127.5 - 1.0
    channels = x.shape[1]
    if channels != in_channels:
        if in_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif channels == 1:
            x = x.expand(-1, in_channels, -1, -1)
        else:
            raise ValueError(f"cannot map {channels}-channel images to {in_channels} channels")
    if tuple(x.shape[2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), **INPUT_RESIZE)
    return x.contiguous()
