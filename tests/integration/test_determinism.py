"""Same config and seed, same weights; and a run stopped and resumed ends bit-identical to one
that never stopped (RNG states ride in the checkpoint, the data order is a function of the step)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from ..conftest import MODEL_NAMES, fit_for_steps, tiny_model_overrides
from .test_resume import run_to_end, sigterm_after_first_grid, train_command

# every model conf/ ships (vae_class among them: conditional), and the conditional GANs
MODELS = [*MODEL_NAMES, "dcgan+class", "stylegan+class"]


def trained_weights(compose_config, digits_dir, model: str, seed: int) -> dict[str, torch.Tensor]:
    """``model`` "<name>+class" is <name> with model.conditioning=class (labels from the data)."""
    pl.seed_everything(seed)
    name, _, conditioning = model.partition("+")
    extra = [f"model.conditioning={conditioning}", f"data.dir={digits_dir}"] if conditioning else []
    module = instantiate(compose_config(f"model={name}", *tiny_model_overrides(name), *extra).model)
    assert (module.num_classes > 0) == (module.conditioning == "class")
    fit_for_steps(module, digits_dir, steps=6, seed=seed)
    return module.sampling_generator().state_dict()


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_gives_identical_weights_another_seed_does_not(compose_config, digits_dir, model):
    first = trained_weights(compose_config, digits_dir, model, seed=0)
    again = trained_weights(compose_config, digits_dir, model, seed=0)
    other = trained_weights(compose_config, digits_dir, model, seed=1)
    assert first.keys() == again.keys()
    for key in first:
        assert torch.equal(first[key], again[key]), f"{model}: {key} differs under the same seed"
    floats = [k for k in first if first[k].is_floating_point()]
    changed = [k for k in floats if not torch.equal(first[k], other[k])]
    assert len(changed) > len(first) // 2, f"{model}: seed 1 left most weights as seed 0 did"


def generator_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "generator.safetensors")


RESUME_CASES = {
    # DiffAugment draws random shifts/cutouts every step: the RNG state must come back exactly.
    "dcgan": ["augment=diffaugment"],
    # StyleGAN draws noise and style-mixing cut points, and runs the lazy R1 by step count.
    "stylegan": tiny_model_overrides("stylegan")[1:],
    # Labels ride with the images in the resumed data order; fakes are drawn for them.
    "dcgan+class": ["model.conditioning=class", "augment=diffaugment"],
}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", sorted(RESUME_CASES))
def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, digits_dir, model):
    name = model.partition("+")[0]
    extra = [f"model={name}", *RESUME_CASES[model], "train.checkpoint_every_n_steps=1000"]
    if name == "stylegan":  # train_command's dcgan widths already set base_channels=8
        extra = [e for e in extra if "base_channels" not in e]
    uninterrupted_dir, interrupted_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    for directory in (uninterrupted_dir, interrupted_dir):
        directory.mkdir()
    run_to_end(train_command(uninterrupted_dir, digits_dir, *extra), uninterrupted_dir)

    command = train_command(interrupted_dir, digits_dir, *extra)
    # Mid-epoch: 300 steps of 16 span several epochs.
    returncode, stderr = sigterm_after_first_grid(command, interrupted_dir)
    assert returncode == 143, stderr[-3000:]

    summary = run_to_end(command, interrupted_dir)
    assert summary["resumed"] is True and 0 < summary["resumed_from_step"] < 300
    expected, resumed = (
        generator_weights(uninterrupted_dir / "run"),
        generator_weights(interrupted_dir / "run"),
    )
    if model.endswith("+class"):  # cBN's per-class scales: the generator is conditional
        assert any(key.endswith("scale.weight") for key in expected), sorted(expected)
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), (
            f"{model}: {key} differs after resuming from step {summary['resumed_from_step']}"
        )
