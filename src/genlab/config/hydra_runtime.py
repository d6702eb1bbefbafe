"""What Hydra's runtime says about the current run: its output folder, whether it is a sweep job,
and which run folder it writes to (the ``genlab_run_dir`` resolver of conf/paths.yaml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.checks import (
    CONDITIONING,
    MAX_CLASS_NAME,
    MAX_CLASSES,
    UNCONDITIONAL,
    class_names,
)
from genlab.errors import ConfigError
from genlab.io import read_json_object
from genlab.layout import DATA_META_FILE, RUNS_DIR, SWEEP_JOB_RUN_DIR, run_name


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


def dataset_num_classes(conditioning: str, data_dir: str) -> int:
    """The class count a model's networks are conditioned on (resolver ``genlab_num_classes``
    in conf/model/shape/): 0 for ``model.conditioning=none``, else the number of classes the
    fetched dataset's meta.json names. Never typed in conf/, so it cannot disagree with the
    data; an unlabelled dataset is refused naming the setting."""
    if conditioning not in CONDITIONING:
        raise ConfigError(
            f"model.conditioning={conditioning!r} is not one of {', '.join(CONDITIONING)}"
        )
    if conditioning == UNCONDITIONAL:
        return 0
    path = project_root() / data_dir / DATA_META_FILE
    if not path.is_file():
        raise ConfigError(
            f"model.conditioning=class takes the classes from {path}, which does not exist: "
            f"run the fetch stage first (`dvc repro fetch` or `python pipelines/fetch.py`)"
        )
    meta = read_json_object(path, fix="re-run the fetch stage to write it again")
    listed = meta.get("classes")
    names = class_names(listed)
    if names is None and isinstance(listed, list) and listed:
        raise ConfigError(
            f"model.conditioning=class needs class names genlab can carry into its files, but "
            f"{path} lists {len(listed)} that are not 1..{MAX_CLASSES} distinct printable names "
            f"of at most {MAX_CLASS_NAME} characters: rename the class folders, or set "
            f"model.conditioning=none"
        )
    if names is None:
        raise ConfigError(
            f"model.conditioning=class needs a labelled dataset, but {path} names no classes "
            f"(unlabelled images): put the images in one subfolder per class, or set "
            f"model.conditioning=none"
        )
    return len(names)


def register_resolvers() -> None:
    """``${genlab_run_name:<model>,<seed>}`` and ``${genlab_run_dir:<run name>}``: the run's
    name and folder, in conf/paths.yaml; ``${genlab_num_classes:<conditioning>,<data dir>}``:
    the networks' class count, in conf/model/shape/."""
    OmegaConf.register_new_resolver("genlab_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("genlab_run_dir", job_run_dir, replace=True)
    OmegaConf.register_new_resolver("genlab_num_classes", dataset_num_classes, replace=True)
