"""DCGAN networks and training logic: shapes, a few real optimization steps, the EMA."""

from __future__ import annotations

import copy
import functools

import pytest
import pytorch_lightning as pl
import torch

from genlab.errors import NonFiniteLossError
from genlab.models.gan import GANModule
from genlab.models.standing_statistics import with_standing_statistics
from genlab.networks.dcgan import DCGANDiscriminator, DCGANGenerator

from ..conftest import fit_for_steps


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("image_size", [32, 64])
def test_shapes_and_range(channels, image_size):
    generator = DCGANGenerator(
        latent_dim=16, base_channels=8, channels=channels, image_size=image_size
    )
    discriminator = DCGANDiscriminator(base_channels=8, channels=channels, image_size=image_size)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, channels, image_size, image_size)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (5,)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(latent_dim=0), "latent_dim must be a positive integer"),
        (dict(image_size=48), "power of two"),
        (dict(channels=-1), "channels must be a positive integer"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DCGANGenerator(**kwargs)


def make_module(lr: float = 2e-4) -> GANModule:
    return GANModule(
        DCGANGenerator(latent_dim=16, base_channels=8),
        DCGANDiscriminator(base_channels=8),
        optim=functools.partial(torch.optim.Adam, lr=lr, betas=(0.5, 0.999)),
        ema_decay=0.9,
    )


def test_training_steps_change_weights_and_ema_follows(digits_dir):
    pl.seed_everything(0)
    module = make_module()
    before_g = copy.deepcopy(module.generator.state_dict())
    before_ema = copy.deepcopy(module.ema_generator.module.state_dict())
    fit_for_steps(module, digits_dir, steps=5, batch_size=32)
    assert module.training_steps == 5
    for key, value in module.generator.state_dict().items():
        if value.is_floating_point() and "weight" in key:
            assert not torch.equal(value, before_g[key]), key
    ema_now = module.ema_generator.module.state_dict()
    generator_now = module.generator.state_dict()
    for key in ema_now:
        if "weight" in key:
            assert not torch.equal(ema_now[key], before_ema[key]), f"EMA did not move: {key}"
            # EMA lags the live weights: it lies between where it started and where G is now.
            assert not torch.equal(ema_now[key], generator_now[key]), key
    losses = {k: float(v) for k, v in module.trainer.callback_metrics.items()}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert {"train/loss_d", "train/loss_g", "train/d_real_accuracy"} <= set(losses)


def test_non_finite_loss_stops_training_with_the_step(digits_dir):
    module = make_module(lr=1e30)  # explodes within a few steps
    with pytest.raises(NonFiniteLossError, match=r"became (nan|inf) at training step \d+"):
        fit_for_steps(module, digits_dir, steps=200, batch_size=32)


def test_generate_uses_ema_in_eval_mode():
    """The EMA generator in eval mode, with BatchNorm statistics of its own weights: its
    running statistics as averaged (here the untouched initial ones) give near-constant
    images."""
    module = make_module()
    z = torch.randn(4, 16)
    ema = module.ema_generator.module
    standing = with_standing_statistics(ema, module.latent_dim)
    assert torch.allclose(module.generate(z), standing.eval()(z))
    assert not torch.allclose(module.generate(z), copy.deepcopy(ema).eval()(z), atol=1e-3)


def test_the_ttur_config_gives_the_discriminator_its_own_slower_optimizer(compose_config):
    """conf/model/dcgan_ttur.yaml: the remedy the health monitor names for an overpowering D."""
    from hydra.utils import instantiate

    module = instantiate(compose_config("model=dcgan_ttur").model)
    opt_g, opt_d = module.configure_optimizers()
    lr_g, lr_d = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
    assert lr_d < lr_g and (lr_g, lr_d) == (2e-4, 5e-5)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {
        id(p) for p in module.discriminator.parameters()
    }
