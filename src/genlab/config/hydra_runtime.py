"""What Hydra's runtime says about the current run: its output folder, whether it is a sweep job,
and which run folder it writes to (the ``genlab_run_dir`` resolver of conf/paths.yaml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.layout import RUNS_DIR, SWEEP_JOB_RUN_DIR, run_name


def hydra_config() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def hydra_output_dir() -> str | None:
    hydra_cfg = hydra_config()
    return None if hydra_cfg is None else str(hydra_cfg.runtime.output_dir)


def project_root() -> Path:
    """The folder every relative path is resolved against: where the stage was started
    (Hydra's original working directory; conf/hydra_run.yaml keeps ``hydra.job.chdir`` off)."""
    hydra_cfg = hydra_config()
    return Path(hydra_cfg.runtime.cwd if hydra_cfg is not None else os.getcwd()).absolute()


def in_sweep() -> bool:
    from hydra.types import RunMode

    hydra_cfg = hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def sweep_name() -> str | None:
    """The sweep folder's name (its start time by default): the W&B group of its runs."""
    hydra_cfg = hydra_config()
    return Path(hydra_cfg.sweep.dir).name if in_sweep() else None


def cpu_threads_per_job() -> int | None:
    """The cores this job may use when its launcher runs several jobs at once on one machine:
    the cores split over joblib's ``n_jobs``, or submitit's ``cpus_per_task``; None otherwise."""
    if not in_sweep():
        return None
    launcher = hydra_config().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        cores = os.cpu_count() or 1
        n_jobs = launcher.get("n_jobs") or -1
        concurrent = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's -1 = all
        return max(1, cores // min(concurrent, cores))
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def job_run_dir(run: str) -> str:
    """`runs/<run name>` for a single run; a sweep job's own folder otherwise (resolver
    ``genlab_run_dir``), so two jobs of one sweep never share checkpoints."""
    if in_sweep():
        return str(Path(hydra_config().runtime.output_dir) / SWEEP_JOB_RUN_DIR)
    return f"{RUNS_DIR}/{run}"  # conf/paths.yaml's default run folder


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config without Hydra's own node: what a run records about itself."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}


def register_resolvers() -> None:
    """``${genlab_run_name:<model>,<seed>}`` and ``${genlab_run_dir:<run name>}``: the run's
    name and folder, in conf/paths.yaml."""
    OmegaConf.register_new_resolver("genlab_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("genlab_run_dir", job_run_dir, replace=True)
