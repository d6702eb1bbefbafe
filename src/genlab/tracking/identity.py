"""What identifies a run: its id, the hash of the config that made it, and the code version."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from genlab.io import write_text


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def source_hash() -> str:
    """A hash of genlab's own Python sources: a checkpoint written by other code is not resumed.

    Content, not the git commit, so committing between a kill and the re-run keeps the resume.
    """
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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
        from genlab import __version__

        return f"genlab-{__version__}"


def new_run_id() -> str:
    return secrets.token_hex(4)


def persistent_run_id(path: str | os.PathLike) -> str:
    """The run id stored at ``path``, created on first use so a resumed run keeps its id."""
    path = Path(path)
    if path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    run_id = new_run_id()
    write_text(path, run_id + "\n")
    return run_id


def dvc_experiment() -> str | None:
    """The DVC experiment this process runs in (`dvc exp run` names it in the environment)."""
    return os.environ.get("DVC_EXP_NAME") or None


def run_links(run_id: str, run_dir: str | os.PathLike) -> dict[str, str | None]:
    """Where each tool keeps this run, all under one id (the W&B run id is the run id)."""
    from genlab.tracking.sweep import hydra_output_dir

    return {
        "run_id": run_id,
        "wandb_run_id": run_id,
        "run_dir": str(run_dir),
        "hydra_output_dir": hydra_output_dir(),
        "dvc_experiment": dvc_experiment(),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV") or None,
    }
