"""DDP keeps one model per rank in lockstep; this checks that it did, on the real weights."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)


class ReplicaConsistencyCheck(pl.Callback):
    """At the end of training, gather every rank's parameters and record the largest gap.

    0.0 means every rank holds the same generator, discriminator and EMA weights (what the
    sampling network, checkpoints and exports taken from rank 0 assume).
    """

    def __init__(self):
        self.max_abs_diff: float | None = None

    def summary(self) -> dict[str, float | None]:
        return {"replica_max_abs_diff": self.max_abs_diff}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size == 1:
            self.max_abs_diff = 0.0
            return
        weights = torch.nn.utils.parameters_to_vector([p.detach() for p in pl_module.parameters()])
        gathered = pl_module.all_gather(weights)  # (world_size, n)
        self.max_abs_diff = (gathered - gathered[0]).abs().max().item()
        if self.max_abs_diff > 0 and trainer.is_global_zero:
            log.warning(
                "DDP replicas diverged: weights differ by up to %.3g between ranks",
                self.max_abs_diff,
            )
