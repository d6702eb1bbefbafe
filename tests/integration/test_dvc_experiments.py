"""DVC experiments on conf/ parameters: `dvc exp run -S` edits a Hydra config file, a queued grid
runs two at a time, and `dvc exp show` / `dvc plots diff` compare the results; each experiment's
name reaches its run's records, so DVC, the run folder and W&B all point at one run id."""

from __future__ import annotations

import json
import time

import pytest

from ..support.dvc_project import make_project_repo, run, run_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LEARNING_RATES = {"lr-1e-4": "1e-4", "lr-5e-4": "5e-4"}


def _wait_for_queue(root, timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], root).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(5)
    raise AssertionError(f"queue still busy after {timeout_s} s:\n{status}")


def _experiments(root) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its params and metrics, as DVC reports them."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root).stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                if revision.get("name"):
                    found[revision["name"]] = revision["data"]
    return found


DCGAN = run_files("dcgan")  # its files, relative to the project repo


def test_queued_grid_of_conf_parameters_runs_and_shows_its_metrics(tmp_path):
    root = make_project_repo(tmp_path / "repo", models=["dcgan"])
    for name, lr in LEARNING_RATES.items():
        run(
            [
                "dvc",
                "exp",
                "run",
                "--queue",
                "-n",
                name,
                "-S",
                f"conf/model/dcgan.yaml:optim.lr={lr}",
            ],
            root,
        )
    run(["dvc", "queue", "start", "-j", "2"], root)
    status = _wait_for_queue(root)
    assert "Failed" not in status, run(
        ["dvc", "queue", "logs", "lr-1e-4"], root, check=False
    ).stdout

    experiments = _experiments(root)
    assert set(LEARNING_RATES) <= set(experiments), experiments.keys()
    run_ids = set()
    for name, lr in LEARNING_RATES.items():
        data = experiments[name]
        params = data["params"]["conf/model/dcgan.yaml"]["data"]
        assert params["optim"]["lr"] == float(lr)
        metrics = data["metrics"][str(DCGAN.metrics)]["data"]
        for column in ("fid", "kid_mean", "isc_mean"):
            assert isinstance(metrics[column], float), column
        # One identity: DVC's experiment name is recorded with the run id it produced.
        assert metrics["dvc_experiment"] == name
        summary = data["metrics"][str(DCGAN.run.summary)]["data"]
        assert summary["links"]["dvc_experiment"] == name
        assert summary["links"]["wandb_run_id"] == summary["run_id"] == metrics["run_id"]
        run_ids.add(metrics["run_id"])
    assert len(run_ids) == 2

    table = run(["dvc", "exp", "show", "--no-pager", "--md"], root).stdout
    for header in ("fid", "kid_mean", "isc_mean"):
        assert header in table
    # Training curves of both experiments in one plot (vega specs, one per plot definition).
    diff = json.loads(run(["dvc", "plots", "diff", *LEARNING_RATES, "--json"], root).stdout)
    (curves,) = diff["data"][str(DCGAN.run.metrics_csv)]
    assert sorted(curves["revisions"]) == sorted(LEARNING_RATES)
    plotted = {point["rev"] for point in curves["content"]["data"]["values"]}
    assert plotted == set(LEARNING_RATES)
