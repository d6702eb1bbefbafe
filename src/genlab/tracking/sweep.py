"""Hydra sweeps (`-m`): one folder and one run per job, failures recorded, one summary at the end.

Each job writes ``genlab_job.json`` (status, error, run id, overrides) into its own Hydra output
folder, whatever launcher ran it (basic, joblib, submitit). The ``SweepSummary`` callback reads
them all when the sweep ends, prints which jobs failed and why, writes
``sweep_summary.json`` in the sweep folder and exits non-zero if any job failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.io import write_json

log = logging.getLogger("genlab")

JOB_STATUS_FILE = "genlab_job.json"
SUMMARY_FILE = "sweep_summary.json"


def _hydra_config() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def hydra_output_dir() -> str | None:
    hydra_cfg = _hydra_config()
    return None if hydra_cfg is None else str(hydra_cfg.runtime.output_dir)


def in_sweep() -> bool:
    from hydra.types import RunMode

    hydra_cfg = _hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def sweep_name() -> str | None:
    """The sweep folder's name (its start time by default): the W&B group of its runs."""
    hydra_cfg = _hydra_config()
    return Path(hydra_cfg.sweep.dir).name if in_sweep() else None


def cpu_threads_per_job() -> int | None:
    """The cores this job may use when its launcher runs several jobs at once on one machine:
    the cores split over joblib's ``n_jobs``, or submitit's ``cpus_per_task``; None otherwise."""
    if not in_sweep():
        return None
    launcher = _hydra_config().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        cores = os.cpu_count() or 1
        n_jobs = launcher.get("n_jobs") or -1
        concurrent = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's -1 = all
        return max(1, cores // min(concurrent, cores))
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def job_run_dir(model_name: str) -> str:
    """`runs/<model>` for a single run; a sweep job's own folder otherwise (resolver
    ``genlab_run_dir``), so two jobs of one sweep never share checkpoints."""
    if in_sweep():
        return str(Path(_hydra_config().runtime.output_dir) / "run")
    return f"runs/{model_name}"


def record_job(run: Callable[[], Any]) -> Any:
    """Run one sweep job; write its status, never raise (the others must still run)."""
    from genlab.stages.entry import StageFailure

    hydra_cfg = _hydra_config()
    status: dict[str, Any] = {
        "job": int(hydra_cfg.job.num),
        "overrides": list(hydra_cfg.overrides.task),
        "output_dir": hydra_cfg.runtime.output_dir,
    }
    result = None
    try:
        result = run()
        status["status"] = "ok"
        if isinstance(result, dict):
            status.update({key: result[key] for key in ("run_id", "objective") if key in result})
    except StageFailure as failure:
        status.update(status="failed", error=str(failure), exit_code=failure.exit_code)
    except Exception as error:  # an unexpected bug in one job must not end the sweep
        log.error("job %s crashed:\n%s", status["job"], traceback.format_exc())
        status.update(status="failed", error=f"{type(error).__name__}: {error}", exit_code=1)
    write_json(Path(hydra_cfg.runtime.output_dir) / JOB_STATUS_FILE, status)
    return result


def _job_detail(job: dict[str, Any]) -> str:
    if job["status"] != "ok":
        return job["error"]
    objective = job.get("objective")
    score = f"  {objective['metric']}={objective['value']:.4g}" if objective else ""
    return job.get("run_id", "") + score


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = [
            json.loads(path.read_text()) for path in sorted(sweep_dir.glob(f"*/{JOB_STATUS_FILE}"))
        ]
        jobs.sort(key=lambda job: job["job"])
        failed = [job for job in jobs if job["status"] != "ok"]
        write_json(
            sweep_dir / SUMMARY_FILE,
            {"jobs": jobs, "failed": len(failed), "succeeded": len(jobs) - len(failed)},
        )
        print(f"\nsweep {sweep_dir}: {len(jobs) - len(failed)} of {len(jobs)} jobs succeeded")
        for job in jobs:
            detail = _job_detail(job)
            print(f"  #{job['job']} {job['status']:6} {' '.join(job['overrides'])}  {detail}")
        if failed:
            print(f"{len(failed)} job(s) failed; see {sweep_dir / SUMMARY_FILE}", file=sys.stderr)
            sys.exit(1)
