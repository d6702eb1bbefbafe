"""Hydra sweeps (`-m`): one folder and one run per job, failures recorded, one summary at the end.

Each job writes ``genlab_job.json`` (status, error, run id, overrides) into its own Hydra output
folder, whatever launcher ran it (basic, joblib, submitit). The ``SweepSummary`` callback reads
them all when the sweep ends, prints which jobs failed and why, writes
``sweep_summary.json`` in the sweep folder and exits non-zero if any job failed. Overrides and
errors pass through :func:`genlab.config.redaction.redact_text` first: a download URL given on
the command line may carry a token.

On SLURM (``hydra/launcher=slurm``) two more cases: a job stopped by SIGTERM (pre-emption,
``scontrol requeue``, ``scancel``) has saved ``last.ckpt`` and exits without a status, so that
the job SLURM requeues resumes and writes the one status; and a job that died without writing
one (killed, cancelled, out of memory) gets a "failed" status written for it by
:func:`report_dead_slurm_jobs`, instead of the sweep waiting or crashing on it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.config.hydra_runtime import hydra_config
from genlab.config.redaction import redact_config, redact_text
from genlab.errors import EXIT_FAILED, GenlabError, TrainingInterrupted
from genlab.io import write_json
from genlab.layout import JOB_STATUS_FILE, SWEEP_SUMMARY_FILE

log = logging.getLogger("genlab")

# A job record's "status" (JOB_STATUS_FILE): "running" is written when the job starts (with its
# pid and host), then replaced by "ok" or "failed". A "running" record whose process is gone was
# interrupted (killed, machine lost): re-running the sweep into the same folder resumes it.
JOB_RUNNING = "running"
JOB_OK = "ok"
JOB_FAILED = "failed"


def record_job(run: Callable[[], Any]) -> Any:
    """Run one sweep job; write its status, never raise (the others must still run).

    The status file keeps no URL secrets: overrides and errors are redacted.
    """
    hydra_cfg = hydra_config()
    status: dict[str, Any] = {
        "job": int(hydra_cfg.job.num),
        "overrides": [redact_text(override) for override in hydra_cfg.overrides.task],
        "output_dir": hydra_cfg.runtime.output_dir,
    }
    result = None
    try:
        result = run()
        status["status"] = "ok"
        if isinstance(result, dict):
            status.update({key: result[key] for key in ("run_id", "objective") if key in result})
    except GenlabError as failure:
        if isinstance(failure, TrainingInterrupted) and (slurm_job := in_slurm_job()):
            # Pre-empted (SLURM requeues it and the job resumes) or cancelled: no status and no
            # submitit result, so that the sweep waits for the requeued job; see module doc.
            log.warning("SLURM job %s exits without a status: %s", slurm_job, failure)
            raise SystemExit(failure.exit_code) from None
        status.update(
            status="failed", error=redact_text(failure.user_message()), exit_code=failure.exit_code
        )
    except Exception as error:  # an unexpected bug in one job must not end the sweep
        log.error("job %s crashed:\n%s", status["job"], redact_text(traceback.format_exc()))
        status.update(
            status="failed",
            error=redact_text(f"{type(error).__name__}: {error}"),
            exit_code=EXIT_FAILED,
        )
    write_json(Path(hydra_cfg.runtime.output_dir) / JOB_STATUS_FILE, status)
    return result


def in_slurm_job() -> str | None:
    """The SLURM job id when submitit submitted this job to SLURM (None otherwise): only then
    does a requeue follow a SIGTERM. A basic / joblib sweep that merely runs inside an sbatch
    allocation records an interrupted job as failed and goes on, as anywhere else."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    return os.environ.get("SLURM_JOB_ID") or None


def _job_detail(job: dict[str, Any]) -> str:
    if job["status"] != "ok":
        return job["error"]
    objective = job.get("objective")
    score = f"  {objective['metric']}={objective['value']:.4g}" if objective else ""
    return job.get("run_id", "") + score


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.launcher.get("_target_")) == SUBMITIT_SLURM_LAUNCHER:
            report_dead_slurm_jobs()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = [  # redacted again: a status file may come from a genlab that did not redact
            redact_config(json.loads(path.read_text()))
            for path in sorted(sweep_dir.glob(f"*/{JOB_STATUS_FILE}"))
        ]
        jobs.sort(key=lambda job: job["job"])
        failed = [job for job in jobs if job["status"] != "ok"]
        write_json(
            sweep_dir / SWEEP_SUMMARY_FILE,
            {"jobs": jobs, "failed": len(failed), "succeeded": len(jobs) - len(failed)},
        )
        print(f"\nsweep {sweep_dir}: {len(jobs) - len(failed)} of {len(jobs)} jobs succeeded")
        for job in jobs:
            detail = _job_detail(job)
            print(f"  #{job['job']} {job['status']:6} {' '.join(job['overrides'])}  {detail}")
        if failed:
            summary_path = sweep_dir / SWEEP_SUMMARY_FILE
            print(f"{len(failed)} job(s) failed; see {summary_path}", file=sys.stderr)
            sys.exit(EXIT_FAILED)


def sweeper_return(cfg: DictConfig, result: Any) -> Any:
    """What the train entry hands back to Hydra: the objective when one is configured.

    A failed or diverged job gives None, which the Optuna sweeper records as a FAIL trial and
    goes on (a NaN would make Optuna 2.x raise inside its own error handling).
    """
    if cfg.train.objective.metric is None:
        return result
    if not isinstance(result, dict) or "objective" not in result:
        return None
    value = result["objective"]["value"]
    return value if math.isfinite(value) else None


SUBMITIT_SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def report_dead_slurm_jobs() -> None:
    """Make Hydra's submitit SLURM launcher write down a job that ends without a result
    (killed, cancelled, crashed before genlab could record it) as failed in its folder, and go
    on to the sweep summary: the stock launcher raises on the first such job, and the summary
    of the others is lost. Hydra loads launchers only from its hydra_plugins package, so this
    replaces the launcher's result collection in the sweeping process instead of subclassing."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    SlurmLauncher.launch = _launch_reporting_dead_jobs


def _launch_reporting_dead_jobs(launcher: Any, job_overrides: Any, initial_job_idx: int) -> Any:
    """BaseSubmititLauncher.launch (hydra-submitit-launcher 1.2), with :func:`_job_result`.

    A copy of that version's code: pyproject.toml pins the launcher below 1.3 for this reason;
    re-check this function before raising the pin."""
    import submitit
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    assert launcher.config is not None and len(job_overrides) > 0
    params = dict(launcher.params)
    cluster = launcher._EXECUTOR
    executor = submitit.AutoExecutor(
        cluster=cluster,
        folder=params.pop("submitit_folder"),
        **{f"{cluster}_max_num_timeout": params.pop("max_num_timeout")},
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{key if key in base else f"{cluster}_{key}": value for key, value in params.items()}
    )
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        os.chmod(sweep_dir, mode=int(str(launcher.config.hydra.sweep.mode), 8))
    log.info("Submitit '%s' sweep output dir : %s", cluster, sweep_dir)
    arguments = []
    for job_num, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", job_num, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        arguments.append(
            (list(overrides), "hydra.sweep.dir", job_num, f"job_id_for_{job_num}", state)
        )
    jobs = executor.map_array(launcher, *zip(*arguments, strict=True))
    return [
        _job_result(launcher, job, overrides, job_num)
        for job, (overrides, _, job_num, *_) in zip(jobs, arguments, strict=True)
    ]


def _job_result(launcher: Any, job: Any, overrides: list[str], job_num: int) -> Any:
    """The job's Hydra result; for a job that died, a "failed" status written on its behalf
    (unless genlab wrote one before dying) and an empty result, as a failed genlab job gives."""
    from hydra.core.utils import JobReturn, JobStatus

    try:
        return job.results()[0]
    except Exception as error:  # submitit's UncompletedJobError / FailedJobError
        state = job.state
        output_dir = _job_output_dir(launcher, overrides, job_num)
        record = output_dir / JOB_STATUS_FILE
        if not record.is_file():
            reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            write_json(
                record,
                {
                    "job": job_num,
                    "overrides": [redact_text(override) for override in overrides],
                    "output_dir": str(output_dir),
                    "status": "failed",
                    "error": redact_text(
                        f"died without a record (SLURM job {job.job_id} state {state}); "
                        f"its log: {job.paths.stderr} ({reason[:300]})"
                    ),
                    "exit_code": EXIT_FAILED,
                },
            )
        log.error("job %s (SLURM job %s) died: %s", job_num, job.job_id, state)
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def _job_output_dir(launcher: Any, overrides: list[str], job_num: int) -> Path:
    """Where the job's Hydra output folder is (or would have been)."""
    from omegaconf import open_dict

    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    try:
        config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.num = job_num
        return sweep_dir / str(config.hydra.sweep.subdir)
    except Exception:  # a subdir that needs Hydra's runtime (override_dirname): the job number
        return sweep_dir / str(job_num)
