"""Surviving what clusters and disks do to a run: SIGTERM and failed checkpoint writes.

SIGTERM (SLURM's pre-emption, `kill`, `timeout`) lets Lightning finish the current batch and
raise ``SIGTERMException``; the callback here writes ``last.ckpt`` at that point so the re-run
resumes from the step reached, not from the last periodic checkpoint. Checkpoints are written to
a temporary file and renamed, so a full disk or a kill mid-write never replaces the previous
good checkpoint with a truncated one.

On SLURM, genlab owns the checkpoint and SLURM / submitit own the requeue, one owner each:
Lightning's own SLURM auto-requeue is turned off (:func:`cluster_plugins`), because its SIGUSR1
handler would requeue the job a second time and write ``hpc_ckpt_*.ckpt``, which Lightning then
prefers over genlab's ``last.ckpt`` even for a run genlab decided to start fresh. A job stopped
by SIGTERM (pre-emption, ``scontrol requeue``) saves ``last.ckpt`` here and exits without a
sweep status (genlab.tracking.sweep); the requeued job resumes from it with the same run id.
Submitit's time-limit warning (USR2, ``signal_delay_s`` before the limit) is treated the same
way: ``last.ckpt`` first, then submitit requeues the job.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
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
        self._submitit_handler: Any = None  # submitit's own handler, while training holds it
        self._time_limit_signalled = False

    @classmethod
    def for_run(cls, context: RunContext) -> CheckpointOnSigterm:
        return cls(context.layout.last_checkpoint)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        submitit_handler = self._restore_submitit_signal()
        if not isinstance(exception, SIGTERMException):
            return
        trainer.save_checkpoint(self.path)
        self.saved_at_step = getattr(pl_module, "training_steps", trainer.global_step)
        log.warning("SIGTERM: saved %s at training step %s", self.path, self.saved_at_step)
        if self._time_limit_signalled:  # submitit's time-limit warning: requeue now
            submitit_handler(_SUBMITIT_SIGNAL, None)  # scontrol requeue, then exits

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under submitit on SLURM, its time-limit signal stops training like SIGTERM does
        (checkpoint at the end of the batch), and only then hands over to submitit's requeue."""
        previous = signal.getsignal(_SUBMITIT_SIGNAL)
        if "submitit" not in getattr(previous, "__module__", "") or not SLURMEnvironment.detect():
            return

        def stop_then_requeue(signum: int, frame: Any) -> None:
            log.warning("SLURM time-limit signal: saving %s before submitit requeues", self.path)
            self._time_limit_signalled = True
            trainer._signal_connector.received_sigterm = True  # Lightning raises SIGTERMException

        self._submitit_handler = previous
        signal.signal(_SUBMITIT_SIGNAL, stop_then_requeue)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_submitit_signal()

    def _restore_submitit_signal(self) -> Any:
        """After training, the signal is submitit's again: a time-limit warning while the run
        is saved or exported must still requeue the job, not set a flag nobody reads. Returns
        submitit's handler (None when training never held the signal)."""
        handler, self._submitit_handler = self._submitit_handler, None
        if handler is not None:
            signal.signal(_SUBMITIT_SIGNAL, handler)
        return handler


_SUBMITIT_SIGNAL = signal.SIGUSR2  # submitit.slurm.slurm.SlurmJobEnvironment.USR_SIG


def cluster_plugins() -> list[Any]:
    """Trainer plugins for the cluster this process runs on: on SLURM, Lightning's SLURM
    environment without its auto-requeue (genlab and submitit own that; see module doc)."""
    if SLURMEnvironment.detect():
        return [SLURMEnvironment(auto_requeue=False)]
    return []
