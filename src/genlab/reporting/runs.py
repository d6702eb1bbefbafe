"""Every run genlab knows in a workspace, as one table: ``genlab runs`` and its page.

A row comes from one of four origins: a ``dvc repro`` run (``runs/<model>`` with
``metrics/<model>.json``), a DVC experiment (``dvc exp show``), a multirun job (a sweep folder's
``<job>/genlab_job.json`` with ``<job>/run/train_summary.json``) or an Optuna trial (the same, in a
sweep folder that holds ``optuna.db``). Nothing here trains or scores: it reads records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# -- where a row comes from ------------------------------------------------------------------
ORIGIN_REPRO = "dvc repro"
ORIGIN_EXPERIMENT = "dvc exp"
ORIGIN_MULTIRUN = "multirun"
ORIGIN_OPTUNA = "optuna"
ORIGINS = (ORIGIN_REPRO, ORIGIN_EXPERIMENT, ORIGIN_MULTIRUN, ORIGIN_OPTUNA)

# -- a row's status --------------------------------------------------------------------------
FINISHED = "finished"
FAILED = "failed"
RUNNING = "running"  # its process is alive (on this host), or on another host and not known dead
INTERRUPTED = "interrupted"  # started, never recorded an end, its process is gone: resumable
STATUSES = (FINISHED, FAILED, RUNNING, INTERRUPTED)


@dataclass(frozen=True)
class RunRow:
    """One run, whatever made it. ``scores`` holds the metric keys of genlab.metric_keys that
    the run has (kid_mean, fid, isc_mean, ...; a sweep job only its objective's); ``params`` the
    swept hyperparameters of a sweep job (dotted key -> value), which the page plots against
    ``objective``."""

    origin: str  # one of ORIGINS
    name: str  # model (dvc repro), experiment name, or "<sweep folder name>#<job>"
    status: str  # one of STATUSES
    model: str | None = None
    reason: str | None = None  # why it failed / was interrupted (one line, redacted)
    overrides: tuple[str, ...] = ()  # what differs from the defaults, as Hydra overrides
    scores: dict[str, float] = field(default_factory=dict)
    objective_metric: str | None = None  # a sweep's objective (train.objective.metric)
    objective: float | None = None
    steps: int | None = None
    images_per_s: float | None = None
    run_id: str | None = None
    wandb_dir: str | None = None  # the run's W&B folder (offline runs: wandb sync it)
    wandb_url: str | None = None  # when synced
    folder: str | None = None  # the run folder, relative to the workspace when inside it
    sweep: str | None = None  # the sweep folder (multirun / optuna rows), relative
    job: int | None = None  # the job number in its sweep (Optuna: the trial number)
    params: dict[str, Any] = field(default_factory=dict)
    best: bool = False  # the best finished run of its sweep by the objective

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["overrides"] = list(self.overrides)
        return row
