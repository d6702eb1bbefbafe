"""A sweep job's record (``genlab_job.json`` in its Hydra output folder) and what it says.

Written by genlab.tracking.sweep.record_job; read by the sweep summary, the Optuna resume
(genlab.tracking.optuna_resume) and the runs table (genlab.reporting.runs). A record may come
from anywhere (a copied sweep folder), so every reader checks what it uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

# A job record's "status" (JOB_STATUS_FILE): "running" is written when the job starts (with its
# pid and host), then replaced by "ok" or "failed". A "running" record whose process is gone was
# interrupted (killed, machine lost): re-running the sweep into the same folder resumes it.
JOB_RUNNING = "running"
JOB_OK = "ok"
JOB_FAILED = "failed"


def read_record(path: Path) -> dict[str, Any] | None:
    """A job record, or None when there is none (or it is unreadable: then the job re-runs)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def overrides_digest(overrides: list[str]) -> str:
    """What a job record keeps to recognise the same job: a hash of its overrides as given (in
    any order). The record's own overrides are redacted, so two URLs that differ only in a
    query value would read the same there."""
    return hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()


def process_alive(record: dict[str, Any]) -> bool | None:
    """Is the process of a "running" record alive? None when it ran on another host or the
    record names no usable pid (the file may come from anywhere: checked before use)."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or type(pid) is not int or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, OSError):  # ProcessLookupError, or a pid no process can have
        return False
    return True


def running_elsewhere(record: dict[str, Any]) -> bool:
    """A "running" record of a live process (on this host) other than this one: the job, or
    its search, is still being run by someone else and must not be started twice."""
    return (
        record.get("status") == JOB_RUNNING
        and record.get("pid") != os.getpid()
        and process_alive(record) is True
    )


def record_interrupted(record: dict[str, Any]) -> bool:
    """A "running" record whose process is gone (on this host): the job was interrupted."""
    return record.get("status") == JOB_RUNNING and process_alive(record) is False
