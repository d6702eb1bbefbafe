"""Hydra multirun on the training entry point: each job its own folder, run id and W&B run; a
failing job does not stop the others; the sweep ends with a summary and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from genlab.layout import OPTIMIZATION_RESULTS_FILE

from ..conftest import PROJECT_ROOT, tiny_model_overrides
from ..support.training import train_quick_classifier

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LEARNING_RATES = ["1e-4", "2e-4", "5e-4", "1e30"]  # the last one diverges: a failing job


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sweep_with_one_failing_job_finishes_the_others(tmp_path, digits_dir, launcher):
    sweep_dir = tmp_path / "multirun"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            "-m",
            f"hydra/launcher={launcher}",
            f"model.optim.lr={','.join(LEARNING_RATES)}",
            f"data.dir={digits_dir}",
            f"hydra.sweep.dir={sweep_dir}",
            "logger.mode=offline",
            "train.steps=20",
            "data.batch_size=16",
            *tiny_model_overrides("dcgan"),
            *(["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "3 of 4 jobs succeeded" in result.stdout
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert summary["failed"] == 1 and summary["succeeded"] == 3
    failed = next(job for job in summary["jobs"] if job["status"] == "failed")
    assert "model.optim.lr=1e+30" in failed["overrides"] and "became nan" in failed["error"]
    run_ids = set()
    for job in summary["jobs"]:
        run_dir = sweep_dir / str(job["job"]) / "run"
        assert (run_dir / "checkpoints/run_id").is_file(), "each job has its own checkpoints"
        if job["status"] == "ok":
            train = json.loads((run_dir / "train_summary.json").read_text())
            assert train["run_id"] == job["run_id"] and train["steps"] == 20
            # Two jobs at once share the cores instead of each taking all of them.
            cores = os.cpu_count() or 1
            expected = max(1, cores // 2) if launcher == "joblib" else torch.get_num_threads()
            assert train["cpu_threads"] == expected
            assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
            run_ids.add(job["run_id"])
    assert len(run_ids) == 3, "one W&B run per job"


def test_optuna_search_minimizes_the_objective_and_survives_a_diverging_trial(tmp_path, digits_dir):
    sweep_dir = tmp_path / "multirun"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            "-m",
            "search=optuna",
            # A seeded random sampler picks 1e30 (diverges), 2e-4, 1e30 over the 3 trials.
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=3",
            "model.optim.lr=choice(2e-4,1e30)",
            f"data.dir={digits_dir}",
            f"paths.classifier={train_quick_classifier(tmp_path, digits_dir)}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep_dir}",
            "logger=csv",
            "train.steps=20",
            "train.objective.num_samples=100",
            "data.batch_size=16",
            *tiny_model_overrides("dcgan"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert "1 of 3 jobs succeeded" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 1, "failed trials are reported by a non-zero exit at the end"
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    (succeeded,) = [job for job in summary["jobs"] if job["status"] == "ok"]
    assert all("became nan" in job["error"] for job in summary["jobs"] if job is not succeeded)
    objective = succeeded["objective"]
    assert objective["metric"] == "kid_mean" and objective["num_samples"] == 100
    train = json.loads((sweep_dir / str(succeeded["job"]) / "run/train_summary.json").read_text())
    assert train["objective"] == objective
    optuna_result = yaml.safe_load((sweep_dir / OPTIMIZATION_RESULTS_FILE).read_text())
    assert optuna_result["best_params"] == {"model.optim.lr": 2e-4}
    assert optuna_result["best_value"] == pytest.approx(objective["value"])
