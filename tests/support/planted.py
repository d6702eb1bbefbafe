"""Planted failures, reachable from a config's ``_target_`` in a test repo."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytorch_lightning as pl
import torch

from genlab.models.losses import NonSaturatingLoss


class LossThatDivergesAt(NonSaturatingLoss):
    """The default GAN loss until training iteration ``step``, then NaN: a divergence at a
    known step, after good checkpoints were written."""

    def __init__(self, step: int):
        self.step = step
        self.iterations = 0

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        self.iterations += 1  # one discriminator loss per training iteration
        loss = super().discriminator(real_logits, fake_logits)
        return loss * float("nan") if self.iterations >= self.step else loss


class KillAtIteration(pl.Callback):
    """SIGKILL the training process at iteration ``iteration``, as a crash or a cluster's kill
    does: no checkpoint is written on the way out (only the periodic ones stand)."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if pl_module.training_steps >= self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordRun(pl.Callback):
    """A user's own callback, known only to a config file: writes the run id it was given and
    the iterations it saw to ``out_file``."""

    def __init__(self, context, out_file: str):
        self.run_id = context.run_id
        self.out_file = Path(out_file)
        self.iterations = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        self.iterations = pl_module.training_steps

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_file.write_text(json.dumps({"run_id": self.run_id, "iterations": self.iterations}))


class RecordBatchLabels(pl.Callback):
    """Writes every (image, label) pair the rank trained on to ``out_dir/rank_<r>.json`` as
    [sha256 of the image's uint8 bytes, label]: checks that labels travel with their images
    (under DDP each rank gets its own shard of both)."""

    def __init__(self, context, out_dir: str):
        self.out_dir = Path(out_dir)
        self.pairs: list[tuple[str, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import hashlib

        from genlab.data.datamodule import to_uint8

        images, labels = batch
        for image, label in zip(to_uint8(images.cpu()), labels.tolist(), strict=True):
            self.pairs.append((hashlib.sha256(image.numpy().tobytes()).hexdigest(), label))

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank_file = self.out_dir / f"rank_{trainer.global_rank}.json"
        rank_file.write_text(json.dumps({"world_size": trainer.world_size, "pairs": self.pairs}))
