"""Test-wide settings: never reach W&B or DVC's servers, keep runs small."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import genlab  # noqa: F401  (installs the torchvision CPU shim before any test imports it)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

# Small widths per model: real networks, fast enough for many tests.
TINY_MODEL_OVERRIDES = {
    "dcgan": ["model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "vae": ["model.encoder.base_channels=8", "model.decoder.base_channels=8"],
    "stylegan": [
        "model.generator.base_channels=4",
        "model.generator.max_channels=16",
        "model.generator.w_dim=32",
        "model.discriminator.base_channels=4",
        "model.discriminator.max_channels=16",
        "model.regularizer.every_n_steps=2",  # so the lazy R1 runs within the test's steps
    ],
}

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("HYDRA_FULL_ERROR", "0")


def compose_config_dir(*overrides: str):
    """Compose conf/ with overrides, as a stage script would (without running Hydra's app)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def compose_config():
    return compose_config_dir


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The default dataset, fetched once per session in the store format."""
    from genlab.data.sources.digits import DigitsSource
    from genlab.data.store import write_dataset

    directory = tmp_path_factory.mktemp("data") / "digits"
    source = DigitsSource(image_size=32, test_fraction=0.2, seed=0)
    write_dataset(directory, source.load(), source.meta())
    return directory


def fit_for_steps(
    module, data_dir: Path, steps: int, batch_size: int = 16, seed: int = 0, callbacks=()
):
    """A real, silent Lightning fit of ``steps`` training iterations on a store-format dataset."""
    import pytorch_lightning as pl

    from genlab.data.datamodule import ImageDataModule

    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps * module.optimizer_steps_per_iteration,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=ImageDataModule(data_dir, batch_size=batch_size, seed=seed))
    return trainer
