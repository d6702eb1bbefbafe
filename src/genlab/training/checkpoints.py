"""Checkpoint folder bookkeeping: resume only what the current config would have produced.

The folder is no DVC output (dvc.yaml: a machine-local crash-recovery area, never pushed),
so DVC never deletes it and it outlives config changes. Resuming a checkpoint written under
another config would silently return the old model, so each folder records the fingerprint of
the config that wrote it, and a mismatch starts fresh.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from safetensors import safe_open

from genlab.code_deps import code_hash, import_closure, package_modules, stage_modules
from genlab.errors import StageInputError
from genlab.io import write_text
from genlab.layout import (
    GENERATOR_FILE,
    RUN_ID_FILE,
    STALE_CHECKPOINTS_SUFFIX,
    TRAINING_FINGERPRINT_FILE,
)
from genlab.layout import LAST_CHECKPOINT as LAST
from genlab.models.generator_file import METADATA_KEY
from genlab.tracking.identity import RunContext, new_run_id, stable_hash

log = logging.getLogger(__name__)


WEIGHT_SECTIONS = ("seed", "data", "model", "trainer")


def training_code(config: dict[str, Any]) -> list[Path]:
    """The source files that shape a training run's weights: the train stage's import closure
    with the modules its model and trainer configs name (genlab.code_deps, which dvc.yaml's
    deps cover), plus the whole training package, whose callbacks hold the RNG and checkpoint
    logic. Which callbacks the config switches on does not count: dropping the progress bar
    or the health monitor must not throw a killed run's checkpoints away."""
    modules = stage_modules("train", config, sections=("model", "trainer"))
    return import_closure([*modules, *package_modules("genlab.training")])


def training_fingerprint(
    config: dict[str, Any], data_meta: dict[str, Any], code: Iterable[Path]
) -> str:
    """What must match for a checkpoint to be resumed: everything that shapes the weights --
    the config sections that reach the model, the data, and ``code`` (``training_code``)."""
    relevant = {key: config[key] for key in WEIGHT_SECTIONS}
    relevant["steps"] = config["train"]["steps"]
    relevant["data_meta"] = data_meta
    relevant["code"] = code_hash(code)
    return stable_hash(relevant)


class IterationCheckpoint(ModelCheckpoint):
    """``last.ckpt`` in the run's checkpoint folder every N training iterations.

    Lightning counts optimizer steps (two per GAN iteration); the config counts iterations, so
    the step interval is set once the module is known.
    """

    def __init__(self, context: RunContext, every_n_iterations: int):
        super().__init__(
            dirpath=context.layout.checkpoints,
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_iterations,
        )
        self.every_n_iterations = every_n_iterations

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        steps_per_iteration = getattr(pl_module, "optimizer_steps_per_iteration", 1)
        self._every_n_train_steps = self.every_n_iterations * steps_per_iteration
        super().setup(trainer, pl_module, stage)


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _why_fresh(resume: bool, stored: str | None, fingerprint: str, last: Path) -> str:
    if not resume:
        return "train.resume=false"
    if stored != fingerprint:
        return "config or code changed since these checkpoints were written"
    if last.is_file():
        return "last.ckpt holds a finished run, and a finished run is re-run from the start"
    return "no last.ckpt to resume from"


def prepare_checkpoint_dir(
    directory: str | Path,
    fingerprint: str,
    resume: bool,
    finished_at_global_step: int,
    is_global_zero: bool = True,
) -> tuple[bool, str]:
    """Return (resume from last.ckpt?, run id). A checkpoint is deleted only when its result is
    kept elsewhere; everything else is moved aside, never deleted (the message names where).

    Only an unfinished run is resumed: DVC re-runs a finished stage only when asked to
    (``dvc repro -f``) and has then deleted its other outputs, which a resume would not remake.
    Under DDP, Lightning starts the other ranks once rank 0 has prepared the folder: they only
    read its decision (``is_global_zero=False``), so the run id is never rewritten.
    """
    directory = Path(directory)
    stored = _read(directory / TRAINING_FINGERPRINT_FILE)
    run_id = _read(directory / RUN_ID_FILE)
    last = directory / LAST
    if not is_global_zero:
        return _wait_for_rank_zero(directory, fingerprint)
    finished = False
    if last.is_file() and stored == fingerprint and run_id:
        finished = _finished(last, finished_at_global_step, resume)
        if resume and not finished:
            log.info("Resuming from %s (config fingerprint %s)", last, fingerprint)
            return True, run_id
    if directory.exists() and any(directory.iterdir()):
        _clear(directory, run_id, _why_fresh(resume, stored, fingerprint, last), finished)
    directory.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    write_text(directory / TRAINING_FINGERPRINT_FILE, fingerprint + "\n")
    write_text(directory / RUN_ID_FILE, run_id + "\n")
    return False, run_id


def _finished(last: Path, finished_at_global_step: int, resume: bool) -> bool:
    """Did last.ckpt reach the end of training? A corrupt file is refused when resuming (the
    message says how to go on) and counts as unfinished otherwise: it is moved aside."""
    try:
        return checkpoint_global_step(last) >= finished_at_global_step
    except StageInputError:
        if resume:
            raise
        return False


BOOKKEEPING = frozenset({RUN_ID_FILE, TRAINING_FINGERPRINT_FILE})  # what this module writes


def _clear(directory: Path, run_id: str | None, why: str, finished: bool) -> None:
    """Empty the checkpoint folder for a fresh start. Deleted only: genlab's own bookkeeping
    with no checkpoint, or a finished run's checkpoint whose result, the generator file beside
    the folder, records the same run id. Anything else -- an unfinished run, a finished run
    whose generator file is gone (``dvc repro -f`` deletes it first), a file genlab did not
    write -- is moved aside whole."""
    names = {entry.name for entry in directory.iterdir()}
    if names <= BOOKKEEPING:
        log.warning("Starting fresh in %s (%s); no checkpoint to keep.", directory, why)
        shutil.rmtree(directory)
        return
    generator = directory.parent / GENERATOR_FILE
    if names <= BOOKKEEPING | {LAST} and run_id and _generator_run_id(generator) == run_id:
        shutil.rmtree(directory)
        log.warning(
            "Starting fresh in %s (%s); the checkpoint of finished run %s was deleted: its "
            "result is %s (that file is replaced when this run finishes).",
            directory,
            why,
            run_id,
            generator,
        )
        return
    aside = _move_aside(directory, run_id)
    if finished:
        keep = (
            "That run had finished (its generator file is in DVC's cache if `dvc repro` wrote "
            "it): there is nothing to resume; delete the folder unless you need that "
            "checkpoint."
        )
    elif LAST in names:
        keep = (
            "Resume them by moving that folder back with the config and code that wrote them; "
            "delete it when you no longer need it."
        )
    else:
        keep = (
            f"It held files genlab did not write ({', '.join(sorted(names - BOOKKEEPING)[:5])})"
            f"; check them, then delete the folder."
        )
    log.warning(
        "Starting fresh in %s (%s); the old folder (run %s) was moved to %s. %s",
        directory,
        why,
        run_id or "unknown",
        aside,
        keep,
    )


def _generator_run_id(path: Path) -> str | None:
    """The run id in a generator file's record (its JSON header only), or None when the file
    is missing or not a genlab generator: only a proven copy lets a checkpoint go."""
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            document = json.loads((handle.metadata() or {})[METADATA_KEY])
        run_id = document["record"]["run_id"]
    except Exception:  # noqa: BLE001 -- any doubt keeps the checkpoint
        return None
    return run_id if isinstance(run_id, str) else None


RANK_ZERO_WAIT_S = 120


def _move_aside(directory: Path, run_id: str | None) -> Path:
    """Rename the checkpoint folder to a sibling no stage deletes: DVC keeps no copy of the
    folder (it is no DVC output), so a deleted checkpoint is gone for good (hours of
    training)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", run_id or "")[:32] or "unknown"  # a file's text
    suffix = STALE_CHECKPOINTS_SUFFIX.format(stamp=stamp, run_id=safe_id)
    aside = directory.with_name(directory.name + suffix)
    counter = 1
    while aside.exists():
        counter += 1
        aside = directory.with_name(f"{directory.name}{suffix}-{counter}")
    directory.rename(aside)
    return aside


def _wait_for_rank_zero(directory: Path, fingerprint: str) -> tuple[bool, str]:
    """Other ranks read rank 0's decision. Lightning's launcher starts them after rank 0 wrote
    it; on SLURM all ranks start together, so they wait for it (up to RANK_ZERO_WAIT_S)."""
    deadline = time.monotonic() + RANK_ZERO_WAIT_S
    while True:
        stored = _read(directory / TRAINING_FINGERPRINT_FILE)
        run_id = _read(directory / RUN_ID_FILE)
        if run_id and stored == fingerprint:
            return (directory / LAST).is_file(), run_id
        if time.monotonic() > deadline:
            raise StageInputError(
                f"{directory} was not prepared by rank 0 for this config within "
                f"{RANK_ZERO_WAIT_S} s: is rank 0 running, and on the same file system?"
            )
        time.sleep(0.5)


def checkpoint_global_step(path: Path) -> int:
    """The checkpoint's optimizer-step count; a truncated or corrupt file is refused before
    any work, saying how to go on.

    genlab writes checkpoints atomically, so this means the file was damaged afterwards (a
    copy cut short, a full disk during ``dvc pull``, a hand edit).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["global_step"])
    except Exception as error:
        raise StageInputError(
            f"{path} cannot be loaded ({type(error).__name__}: {error}); it is truncated or "
            f"corrupt. Delete it to start training afresh (`rm {path}`), or run with "
            f"train.resume=false, which moves the checkpoint folder aside."
        ) from error
