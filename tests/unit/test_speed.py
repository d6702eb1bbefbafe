"""Speed options change memory layout or compile the networks, never what they compute."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from genlab.training.speed import apply_speed_options

from ..conftest import fit_for_steps, tiny_model_overrides


def build(compose_config, model: str):
    pl.seed_everything(0)
    return instantiate(compose_config(f"model={model}", *tiny_model_overrides(model)).model)


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_channels_last_keeps_outputs(compose_config, model):
    reference, fast = build(compose_config, model), build(compose_config, model)
    networks = apply_speed_options(fast, channels_last=True, compile=False)
    assert networks and all(
        name in ("generator", "discriminator", "encoder", "decoder") for name in networks
    )
    weights = [p for p in fast.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    z = torch.randn(4, reference.latent_dim)
    assert torch.allclose(reference.generate(z), fast.generate(z), atol=1e-5)


@pytest.mark.slow
def test_compiled_networks_train_and_keep_their_state_dict_keys(compose_config, digits_dir):
    reference, compiled = build(compose_config, "dcgan"), build(compose_config, "dcgan")
    apply_speed_options(compiled, channels_last=False, compile=True)
    same_keys = compiled.state_dict().keys() == reference.state_dict().keys()
    assert same_keys, "checkpoints must stay loadable"
    fit_for_steps(compiled, digits_dir, steps=3)
    losses = compiled.trainer.callback_metrics
    assert torch.isfinite(losses["train/loss_d"]) and torch.isfinite(losses["train/loss_g"])


def test_a_regularized_discriminator_stays_eager_under_compile(compose_config):
    """R1 / GP take a double backward through D, which torch.compile's aot_autograd refuses."""
    module = build(compose_config, "stylegan")
    assert module.regularizer is not None, "stylegan's default config uses R1"
    apply_speed_options(module, channels_last=False, compile=True)
    assert module.generator._compiled_call_impl is not None
    assert module.discriminator._compiled_call_impl is None
