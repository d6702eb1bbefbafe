"""Resumable sweeps: a real search / multirun process is SIGKILLed mid-job and the same command is
run again into the same folder. Finished jobs are kept, the interrupted one resumes from its
last.ckpt (same run id, same W&B run), the others run; an Optuna study keeps n_trials in all."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab.errors import EXIT_FAILED
from genlab.layout import (
    JOB_STATUS_FILE,
    OPTIMIZATION_RESULTS_FILE,
    OPTUNA_STUDY_FILE,
    SWEEP_SUMMARY_FILE,
)
from genlab.tracking.job_records import JOB_RUNNING, record_interrupted
from genlab.tracking.sweep import JOB_INTERRUPTED, SweepSummary

from ..conftest import PROJECT_ROOT, tiny_model_overrides
from ..support.training import train_quick_classifier

TRAIN = str(PROJECT_ROOT / "pipelines/train.py")
# Enough steps that the kill lands mid-training, a checkpoint every few of them.
TINY_TRAINING = [
    "train.steps=40",
    "train.checkpoint_every_n_steps=4",
    "train.sample_every_n_steps=40",
    "data.batch_size=16",
    "logger.mode=offline",
    *tiny_model_overrides("dcgan"),
]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, digits_dir) -> str:
    """The objective's feature extractor, trained once for the module (one quick epoch)."""
    return str(train_quick_classifier(tmp_path_factory.mktemp("classifier"), digits_dir))


def _search_command(tmp_path: Path, digits_dir: Path, classifier: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        TRAIN,
        "-m",
        "search=optuna",
        "model=dcgan",
        f"data.dir={digits_dir}",
        f"paths.classifier={classifier}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'search'}",
        "train.objective.num_samples=100",
        "hydra.sweeper.sampler.seed=0",  # a reproducible TPE: the same trials on every run
        *TINY_TRAINING,
        *extra,
    ]


def _kill_when_checkpointed(command: list[str], cwd: Path, checkpoint: Path) -> None:
    """Start ``command`` in its own process group; SIGKILL the whole group once ``checkpoint``
    exists (the job is mid-training), as a closed laptop or a lost allocation would."""
    with open(cwd / "killed_run.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 240
        while not checkpoint.is_file():
            assert process.poll() is None, (cwd / "killed_run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the job never wrote a checkpoint"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _job_state(job_dir: Path) -> dict:
    run = job_dir / "run"
    summary = run / "train_summary.json"
    return {
        "run_id": (run / "checkpoints/run_id").read_text().strip(),
        "summary_mtime": summary.stat().st_mtime_ns if summary.is_file() else None,
        "record": json.loads((job_dir / JOB_STATUS_FILE).read_text()),
    }


def _wandb_run_ids(job_dir: Path) -> list[str]:
    """The W&B run id of each attempt of the job (offline-run-<time>-<id> folders)."""
    return [
        p.name.rsplit("-", 1)[-1] for p in sorted((job_dir / "run/wandb").glob("offline-run-*"))
    ]


def _job_dirs(sweep_dir: Path) -> list[str]:
    return sorted((p.name for p in sweep_dir.iterdir() if p.name.isdigit()), key=int)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_optuna_search_resumes_with_the_same_trials_and_keeps_its_space(
    tmp_path, digits_dir, classifier
):
    command = _search_command(tmp_path, digits_dir, classifier, "hydra.sweeper.n_trials=4")
    sweep_dir = tmp_path / "search"
    _kill_when_checkpointed(command, tmp_path, sweep_dir / "2/run/checkpoints/last.ckpt")
    with sqlite3.connect(sweep_dir / OPTUNA_STUDY_FILE) as db:
        before = dict(db.execute("SELECT number, state FROM trials").fetchall())
    assert before == {0: "COMPLETE", 1: "COMPLETE", 2: "RUNNING"}
    finished = {job: _job_state(sweep_dir / str(job)) for job in (0, 1)}
    killed = _job_state(sweep_dir / "2")
    assert killed["record"]["status"] == JOB_RUNNING and record_interrupted(killed["record"])

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 of 4 jobs succeeded" in result.stdout
    with sqlite3.connect(sweep_dir / OPTUNA_STUDY_FILE) as db:
        after = db.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    assert after == [(n, "COMPLETE") for n in range(4)], "n_trials in all, trial 2 told once"
    assert _job_dirs(sweep_dir) == ["0", "1", "2", "3"], "no duplicate run folders"
    for job, state in finished.items():  # not re-run
        assert _job_state(sweep_dir / str(job)) == state
    resumed = json.loads((sweep_dir / "2/run/train_summary.json").read_text())
    assert resumed["resumed"] and resumed["resumed_from_step"] > 0
    assert resumed["run_id"] == killed["run_id"] and resumed["steps"] == 40
    wandb_ids = _wandb_run_ids(sweep_dir / "2")
    assert len(wandb_ids) == 2 and set(wandb_ids) == {killed["run_id"]}, "one W&B run, resumed"
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    assert [job["run_id"] for job in summary["jobs"]][:3] == [
        finished[0]["run_id"],
        finished[1]["run_id"],
        killed["run_id"],
    ]
    assert (sweep_dir / OPTIMIZATION_RESULTS_FILE).is_file()

    # The same folder with another search space: refused in one line, nothing runs.
    other_space = "model.optim.lr=tag(log, interval(1e-3, 1e-2))"
    refused = subprocess.run(
        [*command, other_space], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith(f"genlab: {sweep_dir.absolute()} holds Optuna study")
    assert "interval(1e-3, 1e-2)" in message
    assert "hydra.sweep.dir=" in message and "hydra.sweeper.study_name=" in message
    with sqlite3.connect(sweep_dir / OPTUNA_STUDY_FILE) as db:
        assert db.execute("SELECT count(*) FROM trials").fetchone() == (4,), "nothing ran"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_basic_multirun_resumes_into_the_same_folder(tmp_path, digits_dir):
    sweep_dir = tmp_path / "multirun"
    command = [
        sys.executable,
        TRAIN,
        "-m",
        "model.optim.lr=1e-4,2e-4,5e-4",
        f"data.dir={digits_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_TRAINING,
    ]
    _kill_when_checkpointed(command, tmp_path, sweep_dir / "1/run/checkpoints/last.ckpt")
    assert _job_dirs(sweep_dir) == ["0", "1"]
    first = _job_state(sweep_dir / "0")
    killed = _job_state(sweep_dir / "1")
    assert killed["record"]["status"] == JOB_RUNNING
    assert {"pid", "host", "started", "overrides", "output_dir"} <= set(killed["record"])

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 of 3 jobs succeeded" in result.stdout
    assert f"job 0 already finished (run {first['run_id']}); kept" in result.stdout + result.stderr
    assert _job_state(sweep_dir / "0") == first, "job 0 kept, not re-run"
    resumed = json.loads((sweep_dir / "1/run/train_summary.json").read_text())
    assert resumed["resumed_from_step"] > 0 and resumed["run_id"] == killed["run_id"]
    assert set(_wandb_run_ids(sweep_dir / "1")) == {killed["run_id"]}
    fresh = json.loads((sweep_dir / "2/run/train_summary.json").read_text())
    assert not fresh["resumed"] and fresh["steps"] == 40
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    assert (summary["succeeded"], summary["failed"]) == (3, 0)


def test_summary_reports_a_leftover_running_record_as_interrupted(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    def record(job: int, **fields) -> None:
        (tmp_path / str(job)).mkdir()
        base = {"job": job, "overrides": [f"seed={job}"], "output_dir": str(tmp_path / str(job))}
        (tmp_path / str(job) / JOB_STATUS_FILE).write_text(json.dumps({**base, **fields}))

    record(0, status="ok", run_id="abc")
    running = {"status": JOB_RUNNING, "host": socket.gethostname(), "started": "then"}
    record(1, **running, pid=dead.pid)
    assert record_interrupted({**running, "pid": dead.pid})
    assert not record_interrupted({**running, "pid": os.getppid()}), "alive: still running"
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})

    with pytest.raises(SystemExit) as exited:
        SweepSummary().on_multirun_end(config)

    assert exited.value.code == EXIT_FAILED
    summary = json.loads((tmp_path / SWEEP_SUMMARY_FILE).read_text())
    assert (summary["succeeded"], summary["failed"]) == (1, 1)
    interrupted = summary["jobs"][1]
    assert interrupted["status"] == JOB_INTERRUPTED
    assert f"pid {dead.pid}" in interrupted["error"]
    assert f"hydra.sweep.dir={tmp_path.absolute()}" in interrupted["error"]
    assert "#1 interrupted" in capsys.readouterr().out
