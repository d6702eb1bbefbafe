"""GAN health warnings fire on planted failures: a generator that outputs one image, and a
frozen generator whose discriminator wins outright."""

from __future__ import annotations

import functools
import logging

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from genlab.models.diagnostics import sample_diversity
from genlab.models.gan import GANModule
from genlab.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.training.health import GANHealthMonitor

from ..conftest import fit_for_steps


class OneImageGenerator(nn.Module):
    """A planted mode collapse: the latent is ignored, every sample is the same image."""

    def __init__(self, latent_dim: int = 16):
        super().__init__()
        self.latent_dim = latent_dim
        self.inner = DCGANGenerator(latent_dim=latent_dim, base_channels=8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.zeros_like(z))


def adam(lr: float):
    return functools.partial(torch.optim.Adam, lr=lr, betas=(0.5, 0.999))


def gan(generator: nn.Module, generator_lr: float = 2e-4) -> GANModule:
    return GANModule(
        generator,
        DCGANDiscriminator(base_channels=8),
        optim=adam(generator_lr),
        discriminator_optim=adam(2e-4),
        ema_decay=0.9,
    )


def monitored_fit(module: GANModule, digits_dir, steps: int = 40) -> GANHealthMonitor:
    monitor = GANHealthMonitor(window=10)
    fit_for_steps(module, digits_dir, steps=steps, batch_size=32, callbacks=[monitor])
    return monitor


def test_sample_diversity_is_zero_for_one_image_and_near_one_for_reals():
    real = torch.rand(32, 1, 8, 8) * 2 - 1
    assert sample_diversity(real[:1].expand(32, -1, -1, -1), real) < 1e-3
    assert sample_diversity(torch.rand(32, 1, 8, 8) * 2 - 1, real) == pytest.approx(1, abs=0.05)


def test_planted_mode_collapse_is_flagged(digits_dir, caplog):
    pl.seed_everything(0)
    module = gan(OneImageGenerator())
    with caplog.at_level(logging.WARNING, logger="genlab.training.health"):
        monitor = monitored_fit(module, digits_dir)
    collapse = [m for m in monitor.warnings if "mode collapse" in m]
    assert len(collapse) == 1, "warned once for the episode, not every step"
    assert "0.000x as much as real ones" in collapse[0]
    assert any("mode collapse" in r.getMessage() for r in caplog.records)
    assert module.trainer.callback_metrics["health/mode_collapse"] == 1.0


def test_a_varied_generator_is_not_called_collapsed(digits_dir):
    pl.seed_everything(0)
    module = gan(DCGANGenerator(latent_dim=16, base_channels=8))
    monitor = monitored_fit(module, digits_dir)
    assert not [m for m in monitor.warnings if "mode collapse" in m]
    assert module.trainer.callback_metrics["health/mode_collapse"] == 0.0
    assert module.trainer.callback_metrics["train/sample_diversity"] > 0.1


def test_frozen_generator_lets_the_discriminator_overpower(digits_dir):
    pl.seed_everything(0)
    module = gan(DCGANGenerator(latent_dim=16, base_channels=8), generator_lr=0.0)
    frozen = [p.detach().clone() for p in module.generator.parameters()]
    monitor = monitored_fit(module, digits_dir, steps=60)
    now = list(module.generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen, now, strict=True)), "G must stay frozen"
    overpowering = [m for m in monitor.warnings if "overpowering" in m]
    assert len(overpowering) == 1 and "augment=diffaugment" in overpowering[0]
    assert module.trainer.callback_metrics["health/d_overpowering"] == 1.0


def test_monitor_ignores_models_without_a_discriminator(compose_config, digits_dir):
    from hydra.utils import instantiate

    from ..conftest import tiny_model_overrides

    module = instantiate(compose_config("model=vae", *tiny_model_overrides("vae")).model)
    monitor = GANHealthMonitor(window=2)
    fit_for_steps(module, digits_dir, steps=4, callbacks=[monitor])
    assert monitor.warnings == [] and "health/mode_collapse" not in module.trainer.callback_metrics
