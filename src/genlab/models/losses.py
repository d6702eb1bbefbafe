"""Adversarial losses, chosen by config so a model never forks its code for a loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NonSaturatingLoss:
    """Goodfellow et al.'s non-saturating GAN loss on raw logits."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()


class HingeLoss:
    """Hinge loss (Lim & Ye; SAGAN, BigGAN): D stops pushing logits once past the margin."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


class WassersteinLoss:
    """WGAN critic loss; needs a Lipschitz constraint (e.g. GradientPenalty) to be meaningful."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()
