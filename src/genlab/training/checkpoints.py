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


def prepare_checkpoint_dir(directory: str | Path, fingerprint: str, resume: bool) -> tuple[bool, str]:
    """Return (resume from last.ckpt?, run id). Stale checkpoints are removed, with a message."""
    directory = Path(directory)
    last = directory / LAST
    stored = (directory / FINGERPRINT_FILE).read_text().strip() if (directory / FINGERPRINT_FILE).is_file() else None
    run_id_file = directory / RUN_ID_FILE
    if resume and last.is_file() and stored == fingerprint and run_id_file.is_file():
        log.info("Resuming from %s (same config fingerprint %s)", last, fingerprint)
        return True, run_id_file.read_text().strip()
    if directory.exists() and any(directory.iterdir()):
        why = "resume disabled" if not resume else (
            "config changed since these checkpoints were written" if stored != fingerprint
            else "no last.ckpt to resume from"
        )
        log.warning("Starting fresh in %s (%s); removing old checkpoints.", directory, why)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    write_text(directory / FINGERPRINT_FILE, fingerprint + "\n")
    write_text(run_id_file, run_id + "\n")
    return False, run_id
