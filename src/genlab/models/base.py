"""What every genlab model shares: the sampling interface evaluate, export and callbacks use."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from genlab.checks import CLASS_CONDITIONAL, CONDITIONING
from genlab.errors import NonFiniteLossError
from genlab.models.standing_statistics import balanced_labels, with_standing_statistics


class GenerativeModule(pl.LightningModule):
    """A LightningModule that turns latents into images in [-1, 1].

    Subclasses set ``optimizer_steps_per_iteration`` (Lightning's global_step counts optimizer
    steps, genlab's budgets count training iterations) and implement ``sampling_network``.
    """

    optimizer_steps_per_iteration = 1
    # The model config key of the z -> image network that later stages rebuild from
    # generator.safetensors (its _target_ must be on genlab.models.generator_file.NETWORKS).
    sampling_network_key = "generator"

    def __init__(self, name: str, latent_dim: int, conditioning: str = "none"):
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning must be one of {CONDITIONING}, got {conditioning!r}")
        self.name = name
        self.latent_dim = latent_dim
        self.conditioning = conditioning
        self.start_step = 0

    def check_conditioning(self, **networks: nn.Module) -> None:
        """Every network's ``num_classes`` agrees with ``conditioning``: all > 0 for "class"
        (conf/model/shape/ wires the dataset's class count in), all 0 for "none"."""
        for key, network in networks.items():
            classes = getattr(network, "num_classes", 0)
            if (classes > 0) != (self.conditioning == CLASS_CONDITIONAL):
                raise ValueError(
                    f"model.conditioning={self.conditioning} but model.{key}.num_classes="
                    f"{classes}; leave num_classes to conf/model/shape/ (it follows "
                    f"model.conditioning and the dataset's classes)"
                )

    @property
    def num_classes(self) -> int:
        """The classes the sampler is conditioned on; 0 when unconditional."""
        return int(getattr(self.sampling_network(), "num_classes", 0))

    def sample_labels(self, count: int) -> torch.Tensor | None:
        """Balanced labels for ``count`` samples (None when unconditional)."""
        return balanced_labels(count, self.num_classes, self.device)

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
        return with_standing_statistics(self.sampling_network(), self.latent_dim, self.num_classes)

    def sample_latents(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from the sampling generator, in eval mode; a conditional model
        given no labels samples balanced ones (``sample_labels``)."""
        network = self.sampling_generator()
        if labels is None:
            labels = self.sample_labels(z.shape[0])
        was_training = network.training
        network.eval()
        try:
            if labels is None:
                return network(z.to(self.device))
            return network(z.to(self.device), labels.to(self.device))
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
