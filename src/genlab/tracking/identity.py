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


# The code and configuration that decide a result, relative to the project root: a change to
# any of them (committed or not) is what "-dirty" reports. DVC's own files (dvc.lock, .dvc/) and
# the pipeline's outputs are left out on purpose: `dvc repro` rewrites dvc.lock while it runs, so
# counting it would call every clean clone's run "-dirty".
CODE_PATHS = (
    "src",
    "conf",
    "pipelines",
    "params.yaml",
    "dvc.yaml",
    "pyproject.toml",
    "constraints.txt",
)


@dataclass(frozen=True)
class CodeState:
    """The code version a run records, and the files in CODE_PATHS that differ from it."""

    version: str  # "<sha>", "<sha>-dirty", or "genlab-<version>" outside git
    changes: tuple[str, ...] = ()


def code_state(project_root: str | os.PathLike | None = None) -> CodeState:
    """The git commit of ``project_root`` (the working directory by default), "-dirty" only
    when a file in CODE_PATHS differs from it (edited, staged, deleted, or new and not
    ignored); outside git, the package version."""
    root = Path(project_root) if project_root is not None else Path.cwd()
    try:
        sha = _git(root, "rev-parse", "--short=12", "HEAD").strip()
        status = _git(
            root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *CODE_PATHS
        )
    except (OSError, subprocess.SubprocessError):
        return CodeState(_package_version())
    changes = tuple(sorted(_changed_paths(status)))
    return CodeState(f"{sha}-dirty" if changes else sha, changes)


def code_version(project_root: str | os.PathLike | None = None) -> str:
    """The version a run records: see :func:`code_state`."""
    return code_state(project_root).version


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        errors="replace",  # a file name that is not UTF-8 is still named, never a crash
        check=True,
        timeout=10,
    ).stdout


def _changed_paths(porcelain_z: str) -> list[str]:
    """File names from `git status --porcelain=v1 -z` ("XY name", a rename's old name next)."""
    entries = porcelain_z.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" and index < len(entries):  # renamed or copied: old name next
            paths.append(entries[index])
            index += 1
    return paths


def _package_version() -> str:
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
        "wandb_url": None,  # the run's W&B page once it is online (train stage, after fit)
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
    code_changes: tuple[str, ...] = ()  # files that make provenance's code_version "-dirty"

    def __post_init__(self) -> None:
        # What a run records (train_summary.json, W&B) never holds a URL's credentials/token.
        self.config = redact_config(self.config)

    @property
    def run_dir(self) -> Path:
        return self.layout.root
