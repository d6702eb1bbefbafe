"""bf16 mixed precision (CPU autocast, ``trainer.precision=bf16-mixed``): every model family
trains through the real train stage, and what must stay fp32 stays fp32 (the losses, StyleGAN's
w_avg, the EMA copies, the saved weights). The stage runs are a few tiny steps each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genlab.models.likelihoods import (
    BernoulliLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
)
from genlab.models.losses import HingeLoss, NonSaturatingLoss, WassersteinLoss
from genlab.models.regularizers import GradientPenalty, R1Penalty
from genlab.models.vae import gaussian_kl
from genlab.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.provenance import save_grid

from ..conftest import MODEL_NAMES, PROJECT_ROOT, tiny_model_overrides

pytestmark = pytest.mark.timeout(300)

STEPS = 3
# Every family, each with the options that run extra code under autocast: DiffAugment, WGAN-GP,
# the hinge loss, channels_last, the lazy R1 (StyleGAN's default; every 2 steps when tiny) and
# a VAE likelihood with a learned scale.
CASES = {
    "dcgan": ["augment=diffaugment", "loss=wgan_gp", "train.speed.channels_last=true"],
    "dcgan_ttur": ["loss=hinge"],
    "stylegan": ["augment=diffaugment"],
    "vae": ["model/likelihood=discretized_logistic"],
    "vae_class": [],  # the labels' one-hot rows joining features and z under autocast
}


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def train_bf16(tmp_path: Path, digits_dir: Path, model: str) -> subprocess.CompletedProcess:
    """`pipelines/train.py` as a user starts it, with bf16-mixed and tiny widths."""
    command = [
        sys.executable,
        str(PROJECT_ROOT / "pipelines/train.py"),
        f"model={model}",
        f"data.dir={digits_dir}",
        f"paths.run_dir={tmp_path / 'run'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "logger=csv",
        "data.batch_size=16",
        f"train.steps={STEPS}",
        "trainer.precision=bf16-mixed",
        *tiny_model_overrides(model),
        *CASES[model],
    ]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )


def test_every_model_has_a_bf16_case():
    assert sorted(CASES) == MODEL_NAMES


@pytest.mark.parametrize("model", sorted(CASES))
def test_every_family_trains_under_bf16_mixed(tmp_path, digits_dir, model):
    result = train_bf16(tmp_path, digits_dir, model)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bfloat16 Automatic Mixed Precision" in result.stdout + result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == STEPS
    losses = {k: v for k, v in summary["final"].items() if "loss" in k}
    assert losses and all(np.isfinite(v) for v in losses.values()), summary["final"]

    state = torch.load(run / "checkpoints/last.ckpt", weights_only=False)["state_dict"]
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    not_fp32 = [k for k, v in floats.items() if v.dtype != torch.float32]
    assert floats and not not_fp32, f"checkpoint tensors not in fp32: {not_fp32}"
    saved = {
        k: v for k, v in load_file(run / "generator.safetensors").items() if v.is_floating_point()
    }
    assert saved and all(v.dtype == torch.float32 for v in saved.values())
    if not model.startswith("vae"):  # the GANs sample from an EMA generator
        ema = [k for k in floats if k.startswith("ema_generator.module.")]
        assert ema, "the EMA generator is in the checkpoint, in fp32"
    if model == "stylegan":
        for key in ("generator.w_avg", "ema_generator.module.w_avg"):
            assert floats[key].abs().sum() > 0, f"{key} never moved"
        assert saved["w_avg"].dtype == torch.float32

    grid = run / f"samples/step_{STEPS:06d}.png"
    with Image.open(grid) as image:
        pixels = np.asarray(image)
    assert pixels.size and pixels.std() > 0, "a sample grid of one flat colour"


@pytest.mark.parametrize("loss", [NonSaturatingLoss(), HingeLoss(), WassersteinLoss()])
def test_adversarial_losses_are_fp32_under_bf16_autocast(loss):
    torch.manual_seed(0)
    real, fake = torch.randn(64).bfloat16() * 3, torch.randn(64).bfloat16() * 3
    with bf16_autocast():
        d_loss, g_loss = loss.discriminator(real, fake), loss.generator(fake)
    assert d_loss.dtype == g_loss.dtype == torch.float32
    torch.testing.assert_close(d_loss, loss.discriminator(real.float(), fake.float()))
    torch.testing.assert_close(g_loss, loss.generator(fake.float()))


@pytest.mark.parametrize(
    "likelihood",
    [BernoulliLikelihood(), GaussianLikelihood(sigma=0.1), DiscretizedLogisticLikelihood(1)],
    ids=lambda likelihood: type(likelihood).__name__,
)
def test_likelihoods_and_kl_score_bf16_outputs_in_fp32(likelihood):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 1, 32, 32)).float() / 127.5 - 1
    raw = torch.randn(4, 1, 32, 32).bfloat16()
    mean, log_variance = torch.randn(4, 32).bfloat16(), torch.randn(4, 32).bfloat16()
    with bf16_autocast():
        nll = likelihood.nll(raw, images)
        kl = gaussian_kl(mean, log_variance)
    assert nll.dtype == kl.dtype == torch.float32
    # Exactly what fp32 gives for the same bf16 decoder output: no bf16 step after it.
    torch.testing.assert_close(nll, likelihood.nll(raw.float(), images))
    torch.testing.assert_close(kl, gaussian_kl(mean.float(), log_variance.float()))


@pytest.mark.parametrize("regularizer", [GradientPenalty(), R1Penalty(every_n_steps=1)])
def test_discriminator_penalties_take_bf16_fakes(regularizer):
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(base_channels=8), DCGANDiscriminator(8)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    with bf16_autocast():
        fake = generator(torch.randn(4, generator.latent_dim))
        assert fake.dtype == torch.bfloat16, "a bf16 generator output is what this test is for"
        penalty = regularizer(discriminator, real, fake.detach(), 0)
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
    penalty.backward()
    grads = [p.grad for p in discriminator.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_a_grid_of_bf16_samples_is_the_grid_of_their_fp32_values(tmp_path):
    torch.manual_seed(0)
    generator = DCGANGenerator(base_channels=8).eval()
    with torch.no_grad(), bf16_autocast():
        images = generator(torch.randn(9, generator.latent_dim))
    assert images.dtype == torch.bfloat16
    provenance = {"run_id": "bf16-test"}
    paths = [
        save_grid(images, tmp_path / "bf16.png", provenance),
        save_grid(images.float(), tmp_path / "fp32.png", provenance),
    ]
    grids = []
    for path in paths:
        with Image.open(path) as image:
            grids.append(np.asarray(image))
    assert grids[0].std() > 0 and np.array_equal(grids[0], grids[1])
