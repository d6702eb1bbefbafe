"""The trained sampler as one self-describing file: the network's config plus EMA weights.

Evaluate and export rebuild the generator from the config stored here, not from conf/, so they
always describe the network that was actually trained.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from genlab.errors import StageInputError
from genlab.io import atomic_path

FORMAT_VERSION = 1


def save_generator(
    path: str | os.PathLike,
    generator: nn.Module,
    generator_config: dict[str, Any],
    record: dict[str, Any],
) -> None:
    payload = {
        "format_version": FORMAT_VERSION,
        "generator_config": generator_config,
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "latent_dim": int(generator.latent_dim),
        "record": record,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_generator(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Return (generator in eval mode, the run record stored with it).

    The record also carries ``generator_config``, so a caller can build the same network fresh.
    """
    path = Path(path)
    if not path.is_file():
        raise StageInputError(
            f"{path} does not exist: train the model first (`dvc repro train@<model>` or "
            f"`python pipelines/train.py model=<model>`)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        generator = instantiate(payload["generator_config"])
        generator.load_state_dict(payload["state_dict"])
    except Exception as error:
        raise StageInputError(
            f"{path} is corrupt or incomplete ({type(error).__name__}: {error}); "
            f"re-run the training stage to rebuild it"
        ) from error
    generator.eval().requires_grad_(False)
    record = dict(payload["record"])
    if "config_hash" in record:  # written before the key was named for what it holds
        record.setdefault("training_fingerprint", record.pop("config_hash"))
    return generator, {**record, "generator_config": payload["generator_config"]}


def build_untrained(generator_config: dict[str, Any], seed: int) -> nn.Module:
    """The network as initialised before training: the reference a trained model must beat."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        generator = instantiate(generator_config)
    return generator.eval().requires_grad_(False)
