"""Planted failures, reachable from a config's ``_target_`` in a test repo."""

from __future__ import annotations

import torch

from genlab.models.losses import NonSaturatingLoss


class LossThatDivergesAt(NonSaturatingLoss):
    """The default GAN loss until training iteration ``step``, then NaN: a divergence at a
    known step, after good checkpoints were written."""

    def __init__(self, step: int):
        self.step = step
        self.iterations = 0

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        self.iterations += 1  # one discriminator loss per training iteration
        loss = super().discriminator(real_logits, fake_logits)
        return loss * float("nan") if self.iterations >= self.step else loss
