"""Hydra sweeps (`-m`): one folder and one run per job, failures recorded, one summary at the end.

Each job writes ``genlab_job.json`` (status, error, run id, overrides) into its own Hydra output
folder, whatever launcher ran it (basic, joblib, submitit). The ``SweepSummary`` callback reads
them all when the sweep ends, prints which jobs failed and why, writes
``sweep_summary.json`` in the sweep folder and exits non-zero if any job failed. Overrides and
errors pass through :func:`genlab.config.redaction.redact_text` first: a download URL given on
the command line may carry a token.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genlab.config.hydra_runtime import hydra_config
from genlab.config.redaction import redact_config, redact_text
from genlab.errors import EXIT_FAILED, GenlabError
from genlab.io import write_json
from genlab.layout import JOB_STATUS_FILE, SWEEP_SUMMARY_FILE

log = logging.getLogger("genlab")


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


def _job_detail(job: dict[str, Any]) -> str:
    if job["status"] != "ok":
        return job["error"]
    objective = job.get("objective")
    score = f"  {objective['metric']}={objective['value']:.4g}" if objective else ""
    return job.get("run_id", "") + score


class SweepSummary(Callback):
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
