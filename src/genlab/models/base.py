"""What every genlab model shares: the sampling interface evaluate, export and callbacks use."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from genlab.errors import NonFiniteLossError
from genlab.models.standing_statistics import with_standing_statistics


class GenerativeModule(pl.LightningModule):
    """A LightningModule that turns latents into images in [-1, 1].

    Subclasses set ``optimizer_steps_per_iteration`` (Lightning's global_step counts optimizer
    steps, genlab's budgets count training iterations) and implement ``sampling_network``.
    """

    optimizer_steps_per_iteration = 1
    # The model config key of the z -> image network that later stages rebuild from
    # generator.safetensors (its _target_ must be on genlab.models.generator_file.NETWORKS).
    sampling_network_key = "generator"

    def __init__(self, name: str, latent_dim: int):
        super().__init__()
        self.name = name
        self.latent_dim = latent_dim
        self.start_step = 0

    def on_train_start(self) -> None:
        self.start_step = self.training_steps

    @property
    def training_steps(self) -> int:
        """Completed training iterations."""
        return self.trainer.global_step // self.optimizer_steps_per_iteration

    def sampling_network(self) -> nn.Module:
        """The trained z -> image network (the EMA generator, the VAE decoder)."""
        raise NotImplementedError

    def sampling_generator(self) -> nn.Module:
        """The z -> image network that sample grids, evaluation and export use: the trained one
        with BatchNorm statistics of its own final weights (models/standing_statistics.py)."""
        return with_standing_statistics(self.sampling_network(), self.latent_dim)

    def sample_latents(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the sampling generator, in eval mode."""
        network = self.sampling_generator()
        was_training = network.training
        network.eval()
        try:
            return network(z.to(self.device))
        finally:
            network.train(was_training)

    def check_finite(self, **losses: torch.Tensor) -> None:
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise NonFiniteLossError(
                    f"{name} became {value.item()} at training step {self.training_steps + 1}; "
                    f"training stopped before the weights were updated. Lower the learning rate "
                    f"(model.optim.lr) or check the data."
                )
