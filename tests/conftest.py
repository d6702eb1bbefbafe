"""Test-wide settings: never reach W&B or DVC's servers, keep runs small."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import genlab  # noqa: F401  (installs the torchvision CPU shim before any test imports it)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# Tests run the stages from the project and write into pytest's temporary folders, outside it:
# on purpose, so they say so (conf/paths.yaml reads it). tests/security/test_outputs.py clears
# it to check that an output outside the project is refused by default.
os.environ["GENLAB_OUTPUTS_OUTSIDE_PROJECT"] = "true"
# Everything genlab writes is signed (C2PA): one throwaway signing identity for the whole
# session, never the user's own ~/.config/genlab/keys; subprocesses inherit it.
os.environ["GENLAB_KEYS_DIR"] = tempfile.mkdtemp(prefix="genlab-test-keys-")
atexit.register(shutil.rmtree, os.environ["GENLAB_KEYS_DIR"], True)
os.environ.pop("GENLAB_SIGNING_CERT", None)
os.environ.pop("GENLAB_SIGNING_KEY", None)
os.environ.pop("GENLAB_TRUST_ANCHORS", None)


# Every model conf/ ships: a new model file is tested without an entry here.
MODEL_NAMES = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))
# Small widths: real networks, fast enough for many tests. A StyleGAN-style width schedule
# (base doubling up to max_channels) starts narrower.
TINY_WIDTHS = {"base_channels": 8, "max_channels": 16, "w_dim": 32}


def tiny_model_overrides(model: str) -> list[str]:
    """Overrides that shrink every network of ``model``, read off its own config."""
    from omegaconf import DictConfig, OmegaConf

    config = compose_config_dir(f"model={model}").model
    overrides = []
    for name, node in config.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        for key, width in TINY_WIDTHS.items():
            if key in node:
                width = 4 if key == "base_channels" and "max_channels" in node else width
                overrides.append(f"model.{name}.{key}={width}")
    if OmegaConf.select(config, "regularizer.every_n_steps") is not None:
        overrides.append("model.regularizer.every_n_steps=2")  # the lazy R1 runs in a test
    return overrides


def compose_config_dir(*overrides: str):
    """Compose conf/ with overrides, as a stage script would (without running Hydra's app).

    A conditional model (``model.conditioning=class``, e.g. vae_class) takes its class count
    from the fetched dataset's meta.json: unless the caller names ``data.dir``, it is pointed
    at the digits fetched once for the session (``labelled_data_dir``), so composing it does
    not depend on a ``data/`` folder in the checkout."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
        if OmegaConf.select(cfg, "model.conditioning") != "class" or any(
            override.startswith(("data.dir=", "paths.data_dir=")) for override in overrides
        ):
            return cfg
        return compose("config", overrides=[*overrides, f"data.dir={labelled_data_dir()}"])


@functools.cache
def labelled_data_dir() -> Path:
    """The digits (ten classes) in the store format, fetched once per test process into a
    temporary folder: the data.dir a conditional model composes against by default."""
    from genlab.data.sources.digits import DigitsSource
    from genlab.data.store import write_dataset

    root = Path(tempfile.mkdtemp(prefix="genlab-test-digits-"))
    atexit.register(shutil.rmtree, root, True)
    source = DigitsSource(image_size=32, test_fraction=0.2, seed=0)
    write_dataset(root / "digits", source.load(), source.meta())
    return root / "digits"


def pipeline_paths_under(root: Path) -> list[str]:
    """Overrides that put every file a fetch -> train -> evaluate -> export chain reads or
    writes (data, run, metrics, export, classifier, cache) under ``root``."""
    return [
        f"paths.data_dir={root / 'data'}",
        f"paths.run_dir={root / 'run'}",
        f"paths.metrics_dir={root / 'metrics'}",
        f"paths.export_dir={root / 'export'}",
        f"paths.classifier={root / 'classifier.pt'}",
        f"paths.cache_dir={root / 'cache'}",
    ]


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
