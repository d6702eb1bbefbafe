"""Every model family, built from conf/ exactly as the train stage builds it.

Tiny widths keep each fit to a few seconds; the checks are the issue's: shapes, finite losses,
weights that move, an EMA that follows, exports that match eager output, configs that build.
"""

from __future__ import annotations

import copy
from pathlib import Path

import onnxruntime
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from genlab.config.validate import validate_config
from genlab.data.datamodule import ImageDataModule
from genlab.export.onnx import export_onnx
from genlab.export.torchscript import export_torchscript
from genlab.models.gan import GANModule
from genlab.models.vae import VAEModule

from ..conftest import MODEL_NAMES, fit_for_steps, tiny_model_overrides

CONF = Path(__file__).resolve().parents[2] / "conf"
MODELS = MODEL_NAMES


def option_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def build(compose_config, model: str, *overrides: str, channels: int = 1, size: int = 32):
    cfg = compose_config(
        f"model={model}",
        f"data.channels={channels}",
        f"data.image_size={size}",
        *tiny_model_overrides(model),
        *overrides,
    )
    validate_config(cfg)
    torch.manual_seed(0)
    return instantiate(cfg.model)


def float_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone()
        for k, v in module.state_dict().items()
        if v.is_floating_point() and ("weight" in k or k.endswith(".const"))
    }


def test_every_model_option_is_covered():
    assert option_names("model") == MODELS


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("channels", "size"), [(1, 32), (3, 32), (3, 64)])
def test_sampling_generator_output_shape(compose_config, model, channels, size):
    module = build(compose_config, model, channels=channels, size=size)
    images = module.generate(torch.randn(3, module.latent_dim))
    assert images.shape == (3, channels, size, size) and torch.isfinite(images).all()
    if model != "stylegan":  # StyleGAN2's output is not squashed; to_uint8 clamps it
        assert images.min() >= -1.0001 and images.max() <= 1.0001


@pytest.mark.parametrize("model", MODELS)
def test_a_few_steps_give_finite_losses_and_move_the_weights(compose_config, digits_dir, model):
    pl.seed_everything(0)
    module = build(compose_config, model)
    before = float_weights(module)
    trainer = fit_for_steps(module, digits_dir, steps=4)
    assert module.training_steps == 4
    losses = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    after = float_weights(module)
    trained = [k for k in before if not k.startswith("ema_generator.")]
    unchanged = [k for k in trained if torch.equal(before[k], after[k])]
    assert not unchanged, f"weights that did not move: {unchanged}"
    if isinstance(module, GANModule):
        assert {"train/loss_d", "train/loss_g", "train/d_real_accuracy"} <= set(losses)
        for key in [k for k in before if k.startswith("ema_generator.module.")]:
            live = after[key.replace("ema_generator.module.", "generator.")]
            assert not torch.equal(after[key], before[key]), f"EMA did not move: {key}"
            assert not torch.equal(after[key], live), f"EMA equals the live weights: {key}"
    else:
        assert {"train/nll", "train/kl", "train/neg_elbo_bits_per_dim"} <= set(losses)


@pytest.mark.parametrize("model", MODELS)
def test_sampling_generator_exports_with_parity(compose_config, tmp_path, model):
    module = build(compose_config, model)
    generator = module.sampling_generator()
    ts = export_torchscript(generator, module.latent_dim, tmp_path / "g.pt", parity_batch=4)
    onnx = export_onnx(generator, module.latent_dim, tmp_path / "g.onnx", parity_batch=4)
    assert ts["max_abs_diff"] < 1e-4 and onnx["max_abs_diff"] < 1e-4
    # a conditional model (vae_class) exports its class input beside z, checked with labels
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    inputs = [node.name for node in session.get_inputs()]
    assert inputs == (["z", "label"] if module.num_classes else ["z"])


@pytest.mark.parametrize("loss", [n for n in option_names("loss") if n != "none"])  # none: VAE
@pytest.mark.parametrize("regularizer", option_names("regularizer"))
@pytest.mark.parametrize("augment", option_names("augment"))
def test_every_gan_option_combination_builds(compose_config, loss, regularizer, augment):
    module = build(
        compose_config, "dcgan", f"loss={loss}", f"regularizer={regularizer}", f"augment={augment}"
    )
    assert isinstance(module, GANModule)
    if regularizer != "none":
        assert module.regularizer is not None
    if augment != "none":
        assert not isinstance(module.augment, torch.nn.Identity)


def test_wgan_gp_brings_its_gradient_penalty(compose_config):
    from genlab.models.losses import WassersteinLoss
    from genlab.models.regularizers import GradientPenalty

    module = build(compose_config, "dcgan", "loss=wgan_gp")
    assert isinstance(module.loss, WassersteinLoss)
    assert isinstance(module.regularizer, GradientPenalty)


def test_stylegan_defaults_to_lazy_r1(compose_config):
    from genlab.models.regularizers import R1Penalty

    module = build(compose_config, "stylegan")
    assert isinstance(module.regularizer, R1Penalty)


@pytest.mark.parametrize("likelihood", option_names("model/likelihood"))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_vae_likelihood_trains(compose_config, likelihood, channels):
    module = build(compose_config, "vae", f"model/likelihood={likelihood}", channels=channels)
    assert isinstance(module, VAEModule)
    images = torch.rand(4, channels, 32, 32) * 2 - 1
    mean, log_variance = module.encoder(images)
    nll = module.likelihood.nll(module.decoder.decode(mean), images)
    assert nll.shape == (4,) and torch.isfinite(nll).all()
    nll.mean().backward()
    assert module.decoder.net[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=vae", "loss=hinge"], "model.loss"),
        (["model=dcgan", "model/likelihood=gaussian"], "model/likelihood"),
        (["loss=wasserstein"], "wgan_gp"),
    ],
)
def test_misplaced_options_are_named(compose_config, overrides, message):
    from hydra.errors import HydraException

    from genlab.errors import ConfigError

    with pytest.raises((ConfigError, HydraException)) as info:
        validate_config(compose_config(*overrides))
    assert message in str(info.value)


def test_kl_warmup_ramps_beta(compose_config):
    module = build(compose_config, "vae", "model.beta=2.0", "model.kl_warmup_steps=10")
    assert module.beta_at(0) == pytest.approx(0.2)
    assert module.beta_at(4) == pytest.approx(1.0)
    assert module.beta_at(50) == 2.0


def test_vae_rejects_a_likelihood_that_does_not_match_the_decoder(compose_config):
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException, match="model.decoder.output=tanh"):
        build(compose_config, "vae", "model/likelihood=gaussian", "model.decoder.output=sigmoid")


def test_vae_reconstruction_is_closer_than_a_random_image(compose_config, digits_dir):
    pl.seed_everything(0)
    module = build(compose_config, "vae")
    fit_for_steps(module, digits_dir, steps=60)
    data = ImageDataModule(digits_dir, batch_size=16)
    data.setup()
    images = data.train_set.tensors[0][:32]
    error = (module.reconstruct(images) - images).abs().mean()
    shuffled = (module.reconstruct(images) - images.roll(1, 0)).abs().mean()
    assert error < shuffled


def test_ema_copy_is_independent(compose_config):
    module = build(compose_config, "dcgan")
    ema = module.ema_generator.module
    assert ema is not module.generator
    before = copy.deepcopy(ema.state_dict())
    with torch.no_grad():
        next(module.generator.parameters()).add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in ema.state_dict().items())
