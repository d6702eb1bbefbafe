"""GAN training logic with Lightning manual optimization (one D step, then one G step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from genlab.models.ema import make_ema
from genlab.models.losses import NonSaturatingLoss

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class NonFiniteLossError(FloatingPointError):
    """A loss went NaN/inf: training stops at once so no bad weights are ever checkpointed."""


class GANModule(pl.LightningModule):
    # Lightning's global_step counts optimizer steps: a D and a G step per training iteration.
    optimizer_steps_per_iteration = 2

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optim: OptimizerFactory,
        loss: Any | None = None,
        ema_decay: float = 0.999,
        name: str = "gan",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.name = name
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = make_ema(generator, ema_decay)
        self.optim_factory = optim
        self.loss = loss if loss is not None else NonSaturatingLoss()
        self.latent_dim: int = generator.latent_dim
        self.start_step = 0

    def on_train_start(self) -> None:
        self.start_step = self.training_steps

    @property
    def training_steps(self) -> int:
        """Completed training iterations (one D and one G update each)."""
        return self.trainer.global_step // self.optimizer_steps_per_iteration

    def configure_optimizers(self):
        return [
            self.optim_factory(self.generator.parameters()),
            self.optim_factory(self.discriminator.parameters()),
        ]

    def sample_latents(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.latent_dim, generator=generator).to(self.device)

    def _check_finite(self, **losses: torch.Tensor) -> None:
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise NonFiniteLossError(
                    f"{name} became {value.item()} at training step {self.training_steps + 1}; "
                    f"training stopped before the weights were updated. Lower the learning rate "
                    f"(model.optim.lr) or check the data."
                )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)

        fake = self.generator(z)
        real_logits = self.discriminator(real)
        d_loss = self.loss.discriminator(real_logits, self.discriminator(fake.detach()))
        self._check_finite(loss_d=d_loss)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()

        g_loss = self.loss.generator(self.discriminator(fake))
        self._check_finite(loss_g=g_loss)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.ema_generator.update_parameters(self.generator)

        self.log_dict(
            {
                "train/loss_d": d_loss.detach(),
                "train/loss_g": g_loss.detach(),
                # r_t: how often D calls reals real; near 1.0 means D overpowers G.
                "train/d_real_accuracy": (real_logits.detach() > 0).float().mean(),
            },
            prog_bar=True,
        )

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the EMA generator, the one used for evaluation and export."""
        was_training = self.ema_generator.training
        self.ema_generator.eval()
        try:
            return self.ema_generator.module(z.to(self.device))
        finally:
            self.ema_generator.train(was_training)

    def sampling_generator(self) -> nn.Module:
        return self.ema_generator.module
