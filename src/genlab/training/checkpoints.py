"""Checkpoint folder bookkeeping: resume only what the current config would have produced.

The folder is a ``persist: true`` DVC output, so it outlives config changes. Resuming a
checkpoint written under another config would silently return the old model, so each folder
records the fingerprint of the config that wrote it, and a mismatch starts fresh.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from genlab.io import write_text
from genlab.tracking.identity import new_run_id

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "config_fingerprint"
RUN_ID_FILE = "run_id"
LAST = "last.ckpt"


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _why_fresh(resume: bool, stored: str | None, fingerprint: str) -> str:
    if not resume:
        return "train.resume=false"
    if stored != fingerprint:
        return "config changed since these checkpoints were written"
    return "no last.ckpt to resume from"


def prepare_checkpoint_dir(
    directory: str | Path, fingerprint: str, resume: bool
) -> tuple[bool, str]:
    """Return (resume from last.ckpt?, run id). Stale checkpoints are removed, with a message."""
    directory = Path(directory)
    stored = _read(directory / FINGERPRINT_FILE)
    run_id = _read(directory / RUN_ID_FILE)
    if resume and (directory / LAST).is_file() and stored == fingerprint and run_id:
        log.info("Resuming from %s (config fingerprint %s)", directory / LAST, fingerprint)
        return True, run_id
    if directory.exists() and any(directory.iterdir()):
        why = _why_fresh(resume, stored, fingerprint)
        log.warning("Starting fresh in %s (%s); removing old checkpoints.", directory, why)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    write_text(directory / FINGERPRINT_FILE, fingerprint + "\n")
    write_text(directory / RUN_ID_FILE, run_id + "\n")
    return False, run_id
