"""Adversarial losses, chosen by config so a model never forks its code for a loss.

Each loss reads its logits in fp32: under bf16 autocast D returns bf16 logits, and a bf16 mean
over the batch would round the loss (and the finite-loss check's number) to ~3 digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NonSaturatingLoss:
    """Goodfellow et al.'s non-saturating GAN loss on raw logits."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits.float()).mean()


class HingeLoss:
    """Hinge loss (Lim & Ye; SAGAN, BigGAN): D stops pushing logits once past the margin."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.float().mean()


class WassersteinLoss:
    """WGAN critic loss; needs a Lipschitz constraint (e.g. GradientPenalty) to be meaningful."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return fake_logits.float().mean() - real_logits.float().mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.float().mean()
