"""What identifies a run: its id, the hash of what made it, the code version, where it lives."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from genlab.config.hydra_runtime import hydra_output_dir
from genlab.config.redaction import redact_config
from genlab.layout import RunLayout


def stable_hash(payload: dict[str, Any]) -> str:
    """A short hash of a JSON-able dict that does not depend on key order."""
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def code_version() -> str:
    """The git commit (with '-dirty' for local changes), or the package version outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        try:
            return f"genlab-{metadata.version('genlab')}"
        except metadata.PackageNotFoundError:  # run from a source tree, not installed
            return "genlab-unversioned"


def new_run_id() -> str:
    return secrets.token_hex(4)


def dvc_experiment() -> str | None:
    """The DVC experiment this process runs in (`dvc exp run` names it in the environment)."""
    return os.environ.get("DVC_EXP_NAME") or None


def run_links(run_id: str, run_dir: str | os.PathLike) -> dict[str, str | None]:
    """Where each tool keeps this run, all under one id (the W&B run id is the run id)."""
    return {
        "run_id": run_id,
        "wandb_run_id": run_id,
        "run_dir": str(run_dir),
        "hydra_output_dir": hydra_output_dir(),
        "dvc_experiment": dvc_experiment(),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV") or None,
    }


@dataclass
class RunContext:
    """What a training run knows once its id is settled, for the callbacks and loggers that
    need it: conf/ nodes with ``_partial_: true`` are called with ``context=`` this."""

    cfg: DictConfig
    config: dict[str, Any]  # the resolved config, as recorded (URL secrets redacted)
    run_id: str
    layout: RunLayout
    links: dict[str, str | None]
    provenance: dict[str, str] = field(default_factory=dict)
    data_meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # What a run records (train_summary.json, W&B) never holds a URL's credentials/token.
        self.config = redact_config(self.config)

    @property
    def run_dir(self) -> Path:
        return self.layout.root
