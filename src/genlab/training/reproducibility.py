"""Random state in checkpoints: a resumed run draws the latents, noise and augmentations that
the uninterrupted run would have drawn (Lightning checkpoints do not hold RNG states).

States are stored as tensors and plain numbers, so ``torch.load(weights_only=True)`` (what
Lightning uses to resume) accepts them."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


class RandomStateInCheckpoint(pl.Callback):
    def state_dict(self) -> dict[str, Any]:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        _set_numpy_state(state_dict["numpy"])
        random.setstate(state_dict["python"])


def _numpy_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["kind"], keys, state["position"], state["has_gauss"], state["cached_gaussian"])
    )


class DistinctRandomnessPerRank(pl.Callback):
    """Under DDP every rank starts from the same seed (and a resume restores rank 0's RNG state
    on all of them), so each would draw the same latents, noise and augmentations. Once
    training starts, each rank re-seeds from one shared draw plus its rank: distinct streams,
    still a function of the seed (or of the checkpoint)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            shared = int(torch.randint(0, 2**62, (1,)).item())  # the same draw on every rank
            torch.manual_seed(shared + trainer.global_rank)
