"""Hydra sweeps (`-m`): one folder and one run per job, failures recorded, one summary at the end.

Each job writes ``genlab_job.json`` into its own Hydra output folder, whatever launcher ran it
(basic, joblib, submitit): "running" (pid, host, start time) when it starts, replaced by "ok"
(run id, objective) or "failed" (error) when it ends. The ``SweepSummary`` callback reads them
all when the sweep ends, prints which jobs failed and why (a "running" record left behind: the
job was interrupted), writes ``sweep_summary.json`` in the sweep folder and exits non-zero if any
job failed. Overrides and errors pass through :func:`genlab.config.redaction.redact_text`
first: a download URL given on the command line may carry a token.

Resuming: running the same sweep again into the same folder (``hydra.sweep.dir=<folder>``)
keeps every job whose record says "ok" for the same overrides (its generator file still there)
and re-runs the others; an interrupted job resumes from its ``last.ckpt`` through the
checkpoint fingerprint (same run id, so the same W&B run). An Optuna search does the same
through its study (genlab.tracking.optuna_resume).

On SLURM (``hydra/launcher=slurm``) two more cases: a job stopped by SIGTERM (pre-emption,
``scontrol requeue``, ``scancel``) has saved ``last.ckpt`` and exits with its record still
"running", so that the job SLURM requeues resumes and writes the final status; and a job that
died without writing one (killed, cancelled, out of memory) gets a "failed" status written for
it by
:func:`report_dead_slurm_jobs`, instead of the sweep waiting or crashing on it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.config.hydra_runtime import hydra_config
from genlab.config.redaction import redact_config, redact_text
from genlab.errors import EXIT_FAILED, GenlabError, TrainingInterrupted
from genlab.io import write_json
from genlab.layout import JOB_STATUS_FILE, SWEEP_JOB_RUN_DIR, SWEEP_SUMMARY_FILE, RunLayout
from genlab.tracking.job_records import (
    JOB_FAILED,
    JOB_OK,
    JOB_RUNNING,
    overrides_digest,
    read_record,
    running_elsewhere,
)

log = logging.getLogger("genlab")


# Only in sweep_summary.json: a "running" record left behind when the sweep ended.
JOB_INTERRUPTED = "interrupted"


def record_job(run: Callable[[], Any]) -> Any:
    """Run one sweep job; write its status, never raise (the others must still run).

    A job that already finished in this folder with the same overrides (a re-run sweep) is
    kept, not re-run: its recorded result goes back to the sweeper. The status file keeps no
    URL secrets: overrides and errors are redacted.
    """
    hydra_cfg = hydra_config()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = [str(override) for override in hydra_cfg.overrides.task]
    status: dict[str, Any] = {
        "job": int(hydra_cfg.job.num),
        "overrides": [redact_text(override) for override in overrides],
        "overrides_sha256": overrides_digest(overrides),
        "output_dir": str(output_dir),
    }
    record_path = output_dir / JOB_STATUS_FILE
    previous = read_record(record_path)
    kept = _finished_result(previous, status["overrides_sha256"], output_dir)
    if kept is not None:
        log.info("job %s already finished (run %s); kept", status["job"], kept.get("run_id"))
        return kept
    if previous is not None and not in_slurm_job() and running_elsewhere(previous):
        # A second sweep process into the same folder: two trainers must never share one
        # checkpoint folder. The record stays the running job's; the summary lists it. (Not
        # for a SLURM requeue: the requeued job is the same job, its earlier process gone.)
        log.error(
            "job %s is running in pid %s on %s (another sweep process); not started twice",
            status["job"],
            previous.get("pid"),
            previous.get("host"),
        )
        return None
    write_json(
        record_path,
        {
            **status,
            "status": JOB_RUNNING,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    result = None
    try:
        result = run()
        status["status"] = JOB_OK
        if isinstance(result, dict):
            status.update({key: result[key] for key in ("run_id", "objective") if key in result})
    except GenlabError as failure:
        if isinstance(failure, TrainingInterrupted) and (slurm_job := in_slurm_job()):
            # Pre-empted (SLURM requeues it and the job resumes) or cancelled: the "running"
            # record stays and there is no submitit result, so that the sweep waits for the
            # requeued job; see module doc.
            log.warning("SLURM job %s exits without a status: %s", slurm_job, failure)
            raise SystemExit(failure.exit_code) from None
        status.update(
            status=JOB_FAILED,
            error=redact_text(failure.user_message()),
            exit_code=failure.exit_code,
        )
    except Exception as error:  # an unexpected bug in one job must not end the sweep
        log.error("job %s crashed:\n%s", status["job"], redact_text(traceback.format_exc()))
        status.update(
            status=JOB_FAILED,
            error=redact_text(f"{type(error).__name__}: {error}"),
            exit_code=EXIT_FAILED,
        )
    write_json(record_path, status)
    return result


def _finished_result(
    record: dict[str, Any] | None, digest: str, output_dir: Path
) -> dict[str, Any] | None:
    """What a finished job handed back (run id, objective), when the record in its folder says
    it finished with the same overrides and its generator file is still there; None otherwise.
    A finished job is kept even when the code changed since: like a finished Optuna trial; a
    new sweep folder runs everything again."""
    if record is None or record.get("status") != JOB_OK:
        return None
    if record.get("overrides_sha256") != digest:
        return None
    if not RunLayout.at(output_dir / SWEEP_JOB_RUN_DIR).generator.is_file():
        return None
    return {key: record[key] for key in ("run_id", "objective") if key in record}


def in_slurm_job() -> str | None:
    """The SLURM job id when submitit submitted this job to SLURM (None otherwise): only then
    does a requeue follow a SIGTERM. A basic / joblib sweep that merely runs inside an sbatch
    allocation records an interrupted job as failed and goes on, as anywhere else."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    return os.environ.get("SLURM_JOB_ID") or None


def _job_detail(job: dict[str, Any]) -> str:
    if job["status"] != JOB_OK:
        return job["error"]
    objective = job.get("objective")
    score = f"  {objective['metric']}={objective['value']:.4g}" if objective else ""
    return job.get("run_id", "") + score


def summary_entry(job: dict[str, Any], sweep_dir: Path) -> dict[str, Any]:
    """A job as the summary lists it once the sweep has ended: a "running" record left behind
    is an interrupted job (its process died, or ended without recording a result)."""
    if job["status"] != JOB_RUNNING:
        return job
    if running_elsewhere(job):
        where = f"pid {job['pid']} on {job['host']}"
        return {**job, "error": f"still running in {where} (another process)"}
    where = f"pid {job.get('pid')} on {job.get('host')}, started {job.get('started')}"
    return {
        **job,
        "status": JOB_INTERRUPTED,
        "error": (
            f"interrupted: the job ({where}) ended without recording a result; run the same "
            f"command with hydra.sweep.dir={sweep_dir} to resume it from its last checkpoint"
        ),
    }


def resume_hint(sweep_dir: Path) -> str:
    """The line printed when a sweep starts: how to resume it if it is interrupted."""
    return (
        f"sweep folder {sweep_dir}: if this sweep is interrupted, run the same command with "
        f"hydra.sweep.dir={sweep_dir} to resume it (finished jobs are kept)"
    )


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.launcher.get("_target_")) == SUBMITIT_SLURM_LAUNCHER:
            report_dead_slurm_jobs()
        if str(config.hydra.sweeper.get("_target_")) == OPTUNA_SWEEPER:
            from genlab.tracking.optuna_resume import install_resumable_optuna

            install_resumable_optuna()
        print(resume_hint(Path(str(config.hydra.sweep.dir)).absolute()), flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = [  # redacted again: a status file may come from a genlab that did not redact
            summary_entry(redact_config(record), sweep_dir.absolute())
            for path in sorted(sweep_dir.glob(f"*/{JOB_STATUS_FILE}"))
            if (record := read_record(path)) is not None
        ]
        jobs.sort(key=lambda job: job["job"])
        failed = [job for job in jobs if job["status"] != JOB_OK]
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
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


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
    (unless genlab wrote a final one before dying: its "running" record, left by a job that
    was killed or exited for a requeue that never came, counts as none) and an empty result,
    as a failed genlab job gives."""
    from hydra.core.utils import JobReturn, JobStatus

    try:
        return job.results()[0]
    except Exception as error:  # submitit's UncompletedJobError / FailedJobError
        state = job.state
        output_dir = _job_output_dir(launcher, overrides, job_num)
        record = output_dir / JOB_STATUS_FILE
        previous = read_record(record)
        if previous is None or previous["status"] == JOB_RUNNING:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            write_json(
                record,
                {
                    "job": job_num,
                    "overrides": [redact_text(override) for override in overrides],
                    "output_dir": str(output_dir),
                    "status": JOB_FAILED,
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
