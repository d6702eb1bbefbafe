"""Resuming an Optuna search (genlab.tracking.optuna_resume): Hydra's real Optuna sweeper and a
real SQLite study, with a launcher that records what it was asked to run (or dies mid-sweep, as
a killed sweeping process does) instead of training."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import OmegaConf
from optuna.samplers import GridSampler
from optuna.trial import TrialState

from genlab.errors import ConfigError
from genlab.io import write_json
from genlab.layout import JOB_STATUS_FILE, OPTIMIZATION_RESULTS_FILE, OPTUNA_STUDY_FILE
from genlab.tracking.job_records import JOB_RUNNING, overrides_digest
from genlab.tracking.optuna_resume import (
    NEVER_LAUNCHED_ATTR,
    install_resumable_optuna,
    resume_study,
)

STUDY = "search"


class Killed(Exception):
    """The sweeping process dies while a job runs."""


class RecordingLauncher:
    """Hydra's launcher interface: records each call's first job number and overrides, and
    returns what a finished job returns (the objective: x, or None for a failed job)."""

    def __init__(self, kill_at: int | None = None, fail_jobs: tuple[int, ...] = ()) -> None:
        self.kill_at = kill_at
        self.fail_jobs = fail_jobs
        self.calls: list[tuple[int, list[tuple[str, ...]]]] = []

    @property
    def jobs(self) -> list[int]:
        return [first + i for first, batch in self.calls for i in range(len(batch))]

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        if self.kill_at is not None and initial_job_idx <= self.kill_at:
            if self.kill_at < initial_job_idx + len(job_overrides):
                raise Killed(f"killed while job {self.kill_at} ran")
        self.calls.append((initial_job_idx, [tuple(o) for o in job_overrides]))
        returns = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            params = dict(override.split("=", 1) for override in overrides)
            value = None if number in self.fail_jobs else float(params.get("x", 0.0))
            returns.append(
                JobReturn(
                    overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=value
                )
            )
        return returns


def make_sweeper(
    sweep_dir: Path,
    launcher: RecordingLauncher,
    params: dict[str, str],
    *,
    n_trials: int,
    grid: bool = False,
    n_jobs: int = 1,
    storage: str | None = None,
    direction: str = "minimize",
) -> OptunaSweeperImpl:
    """Hydra's Optuna sweeper as Hydra sets it up (sampler, config, launcher), minus Hydra."""
    sampler = functools.partial(GridSampler) if grid else optuna.samplers.RandomSampler(seed=0)
    sweeper = OptunaSweeperImpl(
        sampler=sampler,
        direction=direction,
        storage=storage,
        study_name=STUDY,
        n_trials=n_trials,
        n_jobs=n_jobs,
        max_failure_rate=1.0,
        search_space=None,
        custom_search_space=None,
        params=OmegaConf.create(params),
    )
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    sweeper.launcher = launcher
    sweeper.hydra_context = object()
    sweeper.job_idx = 0
    return sweeper


def sweep(sweeper: OptunaSweeperImpl, arguments: list[str] | None = None) -> None:
    """The sweep a `genlab -m search=optuna` command runs (resume first, then Hydra's)."""
    install_resumable_optuna()
    OptunaSweeperImpl.sweep(sweeper, arguments or [])


def killed_sweep(sweeper: OptunaSweeperImpl, arguments: list[str] | None = None) -> None:
    with pytest.raises(Killed):
        sweep(sweeper, arguments)


def load(sweep_dir: Path, storage: str | None = None) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=storage or f"sqlite:///{sweep_dir / OPTUNA_STUDY_FILE}"
    )


def write_running_record(sweep_dir: Path, number: int, pid: int, overrides: list[str]) -> None:
    """The record a sweep job writes when it starts (genlab.tracking.sweep.record_job)."""
    write_json(
        sweep_dir / str(number) / JOB_STATUS_FILE,
        {
            "job": number,
            "overrides": overrides,
            "overrides_sha256": overrides_digest(overrides),
            "output_dir": str(sweep_dir / str(number)),
            "status": JOB_RUNNING,
            "pid": pid,
            "host": socket.gethostname(),
            "started": "2026-01-01T00:00:00+00:00",
        },
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_grid_search_killed_mid_grid_runs_each_grid_point_once(tmp_path):
    sweep_dir = tmp_path / "sweep"
    grid = {"x": "choice(1,2)", "y": "choice(a,b)"}  # 4 points, fewer than n_trials
    killed_sweep(make_sweeper(sweep_dir, RecordingLauncher(kill_at=2), grid, n_trials=8, grid=True))

    launcher = RecordingLauncher()
    sweep(make_sweeper(sweep_dir, launcher, grid, n_trials=8, grid=True))

    trials = load(sweep_dir).trials
    assert launcher.jobs == [2, 3]  # the interrupted trial, then the last grid point
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert {(t.params["x"], t.params["y"]) for t in trials} == {
        (x, y) for x in (1, 2) for y in ("a", "b")
    }


def test_a_seeded_search_resumed_does_not_replay_its_first_trials(tmp_path):
    sweep_dir = tmp_path / "sweep"
    space = {"x": "interval(0, 1)"}
    sweep(make_sweeper(sweep_dir, RecordingLauncher(), space, n_trials=2))  # sampler seed 0
    sweep(make_sweeper(sweep_dir, RecordingLauncher(), space, n_trials=4))  # seed 0 again
    values = [trial.params["x"] for trial in load(sweep_dir).trials]
    assert len(values) == 4 and len(set(values)) == 4, values


def test_trial_killed_before_its_parameters_fails_uncounted_and_frees_its_grid_point(tmp_path):
    sweep_dir = tmp_path / "sweep"
    grid = {"x": "choice(1,2,3)"}
    sweep(make_sweeper(sweep_dir, RecordingLauncher(), grid, n_trials=1, grid=True))
    # killed between the sweeper's study.ask() and its suggest: a grid point, no parameters
    study = optuna.load_study(
        study_name=STUDY,
        storage=f"sqlite:///{sweep_dir / OPTUNA_STUDY_FILE}",
        sampler=GridSampler({"x": [1, 2, 3]}),
    )
    study.ask()

    launcher = RecordingLauncher()
    sweep(make_sweeper(sweep_dir, launcher, grid, n_trials=3, grid=True))

    trials = load(sweep_dir).trials
    assert launcher.jobs == [2, 3]  # n_trials=3 trials ran, the never-launched one aside
    assert trials[1].state == TrialState.FAIL
    assert trials[1].system_attrs[NEVER_LAUNCHED_ATTR] is True
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["x"] for t in complete) == [1, 2, 3]


def test_interrupted_batch_runs_again_as_one_batch_with_its_own_job_numbers(tmp_path):
    sweep_dir = tmp_path / "sweep"
    space = {"x": "interval(0, 1)"}
    fixed = ["train.seed=3"]
    killed_sweep(
        make_sweeper(sweep_dir, RecordingLauncher(kill_at=2), space, n_trials=4, n_jobs=2), fixed
    )
    running = [t for t in load(sweep_dir).trials if t.state == TrialState.RUNNING]
    assert [t.number for t in running] == [2, 3]

    launcher = RecordingLauncher()
    sweep(make_sweeper(sweep_dir, launcher, space, n_trials=4, n_jobs=2), fixed)

    expected = [(f"x={t.params['x']}", "train.seed=3") for t in running]
    assert launcher.calls == [(2, expected)]  # both together, as jobs 2 and 3; nothing more
    trials = load(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [t.value for t in trials[2:]] == [t.params["x"] for t in running]


def test_a_search_still_running_in_a_live_process_is_refused(tmp_path):
    sweep_dir = tmp_path / "sweep"
    space = {"x": "interval(0, 1)"}
    killed_sweep(make_sweeper(sweep_dir, RecordingLauncher(kill_at=1), space, n_trials=3))
    trial = load(sweep_dir).trials[1]
    write_running_record(sweep_dir, 1, os.getppid(), [f"x={trial.params['x']}"])

    launcher = RecordingLauncher()
    with pytest.raises(
        ConfigError, match=f"still being searched: trial 1 runs in pid {os.getppid()}"
    ):
        resume_study(make_sweeper(sweep_dir, launcher, space, n_trials=3), [])
    assert launcher.calls == []
    assert load(sweep_dir).trials[1].state == TrialState.RUNNING


def test_explicit_storage_runs_again_only_a_trial_whose_record_proves_it_dead(tmp_path):
    sweep_dir = tmp_path / "sweep"
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    space = {"x": "interval(0, 1)"}
    first = make_sweeper(sweep_dir, RecordingLauncher(kill_at=2), space, n_trials=4, n_jobs=2)
    first.storage = storage
    killed_sweep(first)
    trials = load(sweep_dir, storage).trials
    write_running_record(sweep_dir, 2, dead_pid(), [f"x={trials[2].params['x']}"])
    # trial 3: no record (another worker may be running it)

    launcher = RecordingLauncher()
    second = make_sweeper(sweep_dir, launcher, space, n_trials=4, n_jobs=2, storage=storage)
    resume_study(second, [])

    assert launcher.calls == [(2, [(f"x={trials[2].params['x']}",)])]
    states = [t.state for t in load(sweep_dir, storage).trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.RUNNING]
    assert second.n_trials == 1
    assert second.job_idx == 4
    assert not (sweep_dir / OPTUNA_STUDY_FILE).exists()


def test_resuming_with_another_direction_is_refused(tmp_path):
    sweep_dir = tmp_path / "sweep"
    space = {"x": "interval(0, 1)"}
    sweep(make_sweeper(sweep_dir, RecordingLauncher(), space, n_trials=1))

    launcher = RecordingLauncher()
    again = make_sweeper(sweep_dir, launcher, space, n_trials=2, direction="maximize")
    with pytest.raises(ConfigError, match=r"direction stored \['minimize'\], now \['maximize'\]"):
        resume_study(again, [])
    assert launcher.calls == []


def test_custom_search_space_parameters_are_carried_into_the_rerun(tmp_path):
    sweep_dir = tmp_path / "sweep"
    space = {"x": "interval(0, 1)"}

    def custom(config, trial):  # hydra.sweeper.custom_search_space
        trial.suggest_int("model.depth", 1, 4)

    first = make_sweeper(sweep_dir, RecordingLauncher(kill_at=1), space, n_trials=2)
    first.custom_search_space_extender = custom
    killed_sweep(first)
    params = load(sweep_dir).trials[1].params

    launcher = RecordingLauncher()
    second = make_sweeper(sweep_dir, launcher, space, n_trials=2)
    second.custom_search_space_extender = custom
    sweep(second)

    assert launcher.calls == [(1, [(f"x={params['x']}", f"model.depth={params['model.depth']}")])]
    assert load(sweep_dir).trials[1].state == TrialState.COMPLETE


def test_deprecated_search_space_is_refused_naming_params(tmp_path):
    sweeper = make_sweeper(tmp_path / "sweep", RecordingLauncher(), {}, n_trials=1)
    sweeper.params = None
    sweeper.search_space = OmegaConf.create({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match="hydra.sweeper.params"):
        resume_study(sweeper, [])


def test_grid_sampler_survives_its_last_point_told_fail_outside_optimize():
    install_resumable_optuna()
    study = optuna.create_study(sampler=GridSampler({"x": [1, 2]}))
    first = study.ask()
    first.suggest_categorical("x", [1, 2])
    study.tell(first, 1.0)
    last = study.ask()
    last.suggest_categorical("x", [1, 2])
    study.tell(last, state=TrialState.FAIL)  # optuna 2.10: study.stop() outside optimize
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    install_resumable_optuna()  # idempotent: wraps the original once
    assert GridSampler.after_trial.__wrapped__.__qualname__ == "GridSampler.after_trial"


def test_grid_search_whose_last_trial_fails_ends_with_its_results(tmp_path):
    sweep_dir = tmp_path / "sweep"
    launcher = RecordingLauncher(fail_jobs=(1,))
    sweep(make_sweeper(sweep_dir, launcher, {"x": "choice(1,2)"}, n_trials=2, grid=True))

    assert launcher.jobs == [0, 1]
    states = [t.state for t in load(sweep_dir).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]
    assert (sweep_dir / OPTIMIZATION_RESULTS_FILE).is_file()
