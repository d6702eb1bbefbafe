"""`genlab runs` through the real CLI on a workspace made by genlab itself: a basic sweep of
two tiny jobs and one job refused at config validation, a `dvc repro`-style training run (the
train stage's own command) and a real DVC experiment in a tiny DVC project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.layout import (
    JOB_STATUS_FILE,
    METRICS_DIR,
    MULTIRUN_YAML,
    RUNS_DIR,
    RUNS_PAGE,
    SWEEP_JOB_RUN_DIR,
    metrics_file,
    run_name,
)
from genlab.reporting.runs import (
    FAILED,
    FINISHED,
    ORIGIN_EXPERIMENT,
    ORIGIN_MULTIRUN,
    ORIGIN_REPRO,
)

from ..conftest import PROJECT_ROOT, tiny_model_overrides
from ..support.dvc_project import git_commit, project_env
from ..support.dvc_project import run as run_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BATCH_SIZES = ["8", "16", "0"]  # 0: refused by the config schema (data.batch_size > 0)
SEED = 0
RUN = run_name("dcgan", SEED)  # the `dvc repro` run: runs/<run name>


def genlab_runs(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genlab.cli", "runs", "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=project_env(),
    )


def train(
    workspace: Path, digits_dir: Path, *overrides: str, multirun: bool = False
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            *(["-m"] if multirun else []),
            f"data.dir={digits_dir}",
            "logger.mode=offline",
            "train.steps=10",
            *tiny_model_overrides("dcgan"),
            *overrides,
        ],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=400,
        env=project_env(),
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_dir) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    # what `dvc repro train@dcgan-0` runs
    single = train(root, digits_dir, "model=dcgan", f"seed={SEED}")
    assert single.returncode == 0, single.stderr[-3000:]
    sweep = train(
        root,
        digits_dir,
        "model=dcgan",
        f"data.batch_size={','.join(BATCH_SIZES)}",
        "hydra.sweep.dir=multirun/bs",
        multirun=True,
    )
    assert sweep.returncode == 1 and "2 of 3 jobs succeeded" in sweep.stdout, sweep.stderr[-3000:]
    return root


def test_table_lists_the_repro_run_and_every_sweep_job(workspace):
    result = genlab_runs(workspace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["origin", "name", "status"]
    assert any(line.startswith(f"{ORIGIN_REPRO}  {RUN} ") for line in lines)
    for job in range(3):
        assert any(f"{ORIGIN_MULTIRUN}  " in line and f" bs#{job} " in line for line in lines)
    failed = next(i for i, line in enumerate(lines) if " bs#2 " in line)
    assert FAILED in lines[failed] and "data.batch_size" in lines[failed + 1]
    page = workspace / RUNS_PAGE
    result = genlab_runs(workspace, "--html", "--no-experiments")
    assert result.returncode == 0 and page.is_file(), result.stderr
    assert all(name in page.read_text() for name in ("bs#0", "bs#1", "bs#2"))


def test_json_rows_match_the_records_on_disk(workspace):
    result = genlab_runs(workspace, "--json", "--no-experiments")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {RUN, "bs#0", "bs#1", "bs#2"}
    repro = rows[RUN]
    folder = f"{RUNS_DIR}/{RUN}"
    summary = json.loads((workspace / folder / "train_summary.json").read_text())
    assert repro["origin"] == ORIGIN_REPRO and repro["status"] == FINISHED
    assert repro["model"] == "dcgan", "the model its train summary records"
    assert (repro["run_id"], repro["steps"]) == (summary["run_id"], 10)
    assert repro["images_per_s"] == summary["images_per_s"] and repro["folder"] == folder
    assert {"model=dcgan", f"seed={SEED}", "train.steps=10"} <= set(repro["overrides"])
    assert repro["wandb_dir"].startswith(f"{folder}/wandb/offline-run-")
    assert repro["wandb_dir"].endswith(summary["run_id"])
    sweep = workspace / "multirun/bs"
    assert (sweep / MULTIRUN_YAML).is_file()
    for job, batch_size in enumerate(BATCH_SIZES):
        row = rows[f"bs#{job}"]
        record = json.loads((sweep / str(job) / JOB_STATUS_FILE).read_text())
        assert row["params"] == {"data.batch_size": int(batch_size)}, "only the swept key"
        assert row["sweep"] == "multirun/bs" and row["job"] == job
        assert f"data.batch_size={batch_size}" in row["overrides"]
        if batch_size == "0":
            assert row["status"] == FAILED and row["reason"] == record["error"]
            continue
        run_summary = json.loads(
            (sweep / str(job) / SWEEP_JOB_RUN_DIR / "train_summary.json").read_text()
        )
        assert row["status"] == FINISHED and row["run_id"] == record["run_id"]
        assert row["run_id"] == run_summary["run_id"] and row["steps"] == 10
        assert row["folder"] == f"multirun/bs/{job}/run"


def test_sort_and_filter_through_the_cli(workspace):
    result = genlab_runs(workspace, "--json", "--sort", "images_per_s", "--desc")
    speeds = [row["images_per_s"] for row in json.loads(result.stdout)]
    present = [speed for speed in speeds if speed is not None]
    assert present == sorted(present, reverse=True) and speeds[-1] is None, "missing last"
    result = genlab_runs(workspace, "--filter", "status=failed")
    assert result.returncode == 0
    body = result.stdout.splitlines()[1:]
    assert " bs#2 " in body[0] and all(" bs#0 " not in line for line in body)
    result = genlab_runs(
        workspace, "--json", "--filter", "origin=multirun", "--filter", "steps>=10"
    )
    assert sorted(row["name"] for row in json.loads(result.stdout)) == ["bs#0", "bs#1"]


def test_bad_arguments_exit_2_with_one_line(workspace):
    for args in (["--filter", "steps<many"], ["--sort", "speed"]):
        result = genlab_runs(workspace, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("genlab runs: error: argument")


# a stage that writes what train@dcgan-0 and evaluate@dcgan-0 record, where they write it
RUN_DIR, METRICS = f"{RUNS_DIR}/{RUN}", str(metrics_file(METRICS_DIR, RUN))
STAGE_SCRIPT = f"""\
import json, os, yaml
lr = yaml.safe_load(open("params.yaml"))["lr"]
os.makedirs("{RUN_DIR}", exist_ok=True)
os.makedirs("{METRICS_DIR}", exist_ok=True)
summary = {{"run_id": f"run-{{lr}}", "model": "dcgan", "steps": 7, "images_per_s": 12.5}}
json.dump(summary, open("{RUN_DIR}/train_summary.json", "w"))
scores = {{"extractor": "x", "kid_mean": lr * 2, "fid": lr * 100}}
json.dump(scores, open("{METRICS}", "w"))
"""
DVC_YAML = f"""\
stages:
  train:
    cmd: python stage.py
    deps: [stage.py]
    params: [lr]
    metrics:
      - {RUN_DIR}/train_summary.json:
          cache: false
      - {METRICS}:
          cache: false
"""


def test_a_dvc_experiment_is_a_row_with_its_params_and_metrics(tmp_path):
    (tmp_path / "params.yaml").write_text("lr: 0.001\nseed: 0\n")
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    run_in(["git", "init", "-q"], tmp_path)
    run_in(["dvc", "init", "-q"], tmp_path)
    git_commit(tmp_path, "init")
    empty = genlab_runs(tmp_path, "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    run_in(["dvc", "exp", "run", "-q", "-S", "lr=0.002", "-n", "exp-lr"], tmp_path)

    result = genlab_runs(tmp_path, "--json", "--filter", "origin=dvc exp")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["origin"] == ORIGIN_EXPERIMENT and row["name"] == "exp-lr"
    assert row["overrides"] == ["lr=0.002"], "the params that differ from its baseline"
    assert row["scores"] == {"kid_mean": 0.004, "fid": 0.2} and row["model"] == "dcgan"
    assert (row["steps"], row["images_per_s"], row["run_id"]) == (7, 12.5, "run-0.002")
    without = genlab_runs(tmp_path, "--json", "--no-experiments")
    assert all(r["origin"] != ORIGIN_EXPERIMENT for r in json.loads(without.stdout))
