"""GAN training logic with Lightning manual optimization (one D step, then one G step).

One module serves every GAN family: the networks, the adversarial loss, the discriminator
regularizer and the augmentation all come from config, so a new combination never forks code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from genlab.checks import CLASS_CONDITIONAL
from genlab.errors import NonFiniteLossError
from genlab.models.base import GenerativeModule
from genlab.models.diagnostics import sample_diversity
from genlab.models.ema import make_ema
from genlab.models.losses import NonSaturatingLoss

__all__ = ["GANModule", "NonFiniteLossError"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
Regularizer = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], "torch.Tensor | None"]


class GANModule(GenerativeModule):
    optimizer_steps_per_iteration = 2  # a D and a G update per training iteration

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optim: OptimizerFactory,
        loss: Any | None = None,
        regularizer: Regularizer | None = None,
        augment: nn.Module | None = None,
        ema_decay: float = 0.999,
        discriminator_optim: OptimizerFactory | None = None,
        name: str = "gan",
        conditioning: str = "none",
    ):
        super().__init__(name=name, latent_dim=generator.latent_dim, conditioning=conditioning)
        self.check_conditioning(generator=generator, discriminator=discriminator)
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = make_ema(generator, ema_decay)
        self.optim_factory = optim
        self.discriminator_optim_factory = discriminator_optim or optim
        self.loss = loss if loss is not None else NonSaturatingLoss()
        self.regularizer = regularizer
        self.augment = augment if augment is not None else nn.Identity()

    def configure_optimizers(self):
        return [
            self.optim_factory(self.generator.parameters()),
            self.discriminator_optim_factory(self.discriminator.parameters()),
        ]

    def _critic(self, labels: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """D as a function of images alone: the regularizers call it on reals, fakes or their
        blends, which all carry the batch's labels (fakes are drawn for the reals' classes)."""
        if labels is None:
            return self.discriminator
        return lambda images: self.discriminator(images, labels)

    def _discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        critic = self._critic(labels)
        real_seen, fake_seen = self.augment(real), self.augment(fake.detach())
        real_logits, fake_logits = critic(real_seen), critic(fake_seen)
        loss = self.loss.discriminator(real_logits, fake_logits)
        logs = {
            "train/loss_d": loss.detach(),
            # r_t and its twin on fakes: both pinned at 1.0 means D overpowers G.
            "train/d_real_accuracy": (real_logits.detach() > 0).float().mean(),
            "train/d_fake_accuracy": (fake_logits.detach() < 0).float().mean(),
            "train/sample_diversity": sample_diversity(fake, real),
        }
        if self.regularizer is not None:
            penalty = self.regularizer(critic, real_seen, fake_seen, self.training_steps)
            if penalty is not None:
                self.check_finite(penalty_d=penalty)
                loss = loss + penalty
                logs["train/penalty_d"] = penalty.detach()
        return loss, logs

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch
        # A conditional GAN draws its fakes for the reals' classes: the class mix follows the
        # data, and real and fake halves of every D step (and R1 / GP) see the same labels.
        labels = labels if self.conditioning == CLASS_CONDITIONAL else None
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        fake = self.generator(z) if labels is None else self.generator(z, labels)

        d_loss, logs = self._discriminator_loss(real, fake, labels)
        self.check_finite(loss_d=d_loss)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()

        g_loss = self.loss.generator(self._critic(labels)(self.augment(fake)))
        self.check_finite(loss_g=g_loss)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.ema_generator.update_parameters(self.generator)

        self.log_dict({**logs, "train/loss_g": g_loss.detach()}, prog_bar=True)

    def sampling_network(self) -> nn.Module:
        """The EMA generator: smoother samples than the live weights, used for eval and export."""
        return self.ema_generator.module
