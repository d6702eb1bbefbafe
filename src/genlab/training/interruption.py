"""Surviving what clusters and disks do to a run: SIGTERM and failed checkpoint writes.

SIGTERM (SLURM's pre-emption, `kill`, `timeout`) lets Lightning finish the current batch and
raise ``SIGTERMException``; the callback here writes ``last.ckpt`` at that point so the re-run
resumes from the step reached, not from the last periodic checkpoint. Checkpoints are written to
a temporary file and renamed, so a full disk or a kill mid-write never replaces the previous
good checkpoint with a truncated one.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genlab.errors import CheckpointWriteError
from genlab.io import atomic_path
from genlab.tracking.identity import RunContext

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary file beside the target, then an atomic rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(target) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)
        except OSError as error:
            kept = "the previous one is intact" if target.is_file() else "no earlier checkpoint"
            hint = "free disk space" if error.errno == errno.ENOSPC else "check the folder"
            raise CheckpointWriteError(
                f"could not write {target} ({error.strerror or error}); {kept}. "
                f"{hint.capitalize()} and run again to resume."
            ) from error


class CheckpointOnSigterm(pl.Callback):
    """Write ``last.ckpt`` when Lightning stops for SIGTERM."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.saved_at_step: int | None = None

    @classmethod
    def for_run(cls, context: RunContext) -> CheckpointOnSigterm:
        return cls(context.layout.last_checkpoint)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        trainer.save_checkpoint(self.path)
        self.saved_at_step = getattr(pl_module, "training_steps", trainer.global_step)
        log.warning("SIGTERM: saved %s at training step %s", self.path, self.saved_at_step)
