"""What DVC sees when training fails or collides: real `dvc repro` in a temporary repo."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from ..support.dvc_project import (
    edit_yaml,
    git_commit,
    make_project_repo,
    project_env,
    run,
    run_files,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DIVERGES_AT = 25
DCGAN, VAE = run_files("dcgan"), run_files("vae")  # relative to a project repo


def recorded_stages(root: Path) -> set[str]:
    lock = root / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else set()


def test_divergence_fails_the_stage_keeps_the_good_checkpoint_and_never_evaluates(tmp_path):
    root = make_project_repo(tmp_path, models=["dcgan"])
    edit_yaml(root / "conf/config.yaml", {"train": {"checkpoint_every_n_steps": 10}})
    (root / "conf/loss/non_saturating.yaml").write_text(
        "# @package model\n"
        "loss:\n"
        "  _target_: tests.support.planted.LossThatDivergesAt\n"
        f"  step: {DIVERGES_AT}\n"
    )
    git_commit(root, "a loss that turns NaN at a known step")

    result = run(["dvc", "repro"], root, check=False)

    assert result.returncode != 0
    assert f"loss_d became nan at training step {DIVERGES_AT}" in result.stderr
    assert f"failed to reproduce '{DCGAN.stage('train')}'" in result.stderr
    checkpoint = torch.load(root / DCGAN.run.last_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] // 2 == 20, "the last periodic checkpoint before the NaN"
    weights = [v for v in checkpoint["state_dict"].values() if v.is_floating_point()]
    assert weights and all(torch.isfinite(v).all() for v in weights)
    assert not (root / DCGAN.run.generator).exists()
    assert not (root / DCGAN.metrics).exists(), "evaluate must never run on it"
    recorded = recorded_stages(root)
    assert DCGAN.stage("train") not in recorded and DCGAN.stage("evaluate") not in recorded
    assert "fetch" in recorded
    status = json.loads(run(["dvc", "status", "--json"], root).stdout)
    assert DCGAN.stage("train") in status


@pytest.fixture(scope="module")
def prepared_repo(tmp_path_factory) -> Path:
    """dcgan and vae, with the shared upstream stages already run and committed."""
    root = make_project_repo(tmp_path_factory.mktemp("repo"), models=["dcgan", "vae"])
    edit_yaml(root / "conf/config.yaml", {"train": {"steps": 150}})
    run(["dvc", "repro", "fetch", "train_classifier"], root)
    git_commit(root, "upstream stages")
    return root


def start(args: list[str], root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=root,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_locked(root: Path, run_dir: Path, process: subprocess.Popen) -> None:
    """Until DVC holds the write lock on the stage's outputs (recorded in .dvc/tmp/rwlock)."""
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the stage never started"
        try:
            locks = json.loads((root / ".dvc/tmp/rwlock").read_text())
        except (OSError, json.JSONDecodeError):
            locks = {}
        if any(f"{run_dir}/" in path for path in locks.get("write", {})):
            return
        time.sleep(0.1)


def test_second_repro_of_a_running_stage_fails_fast_with_dvcs_lock_message(prepared_repo):
    root = prepared_repo
    train = DCGAN.stage("train")
    first = start(["dvc", "repro", "-f", "-s", train], root)
    wait_until_locked(root, DCGAN.run.root, first)
    started = time.monotonic()
    second = run(["dvc", "repro", "-f", "-s", train], root, check=False, timeout=60)
    waited = time.monotonic() - started
    assert first.poll() is None, "the first run must still be training for this to test a clash"
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert waited < 30, f"the second run should fail fast, took {waited:.1f}s"
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert train in recorded_stages(root)


def test_different_models_train_in_parallel(prepared_repo):
    root = prepared_repo
    files = {files.model: files for files in (DCGAN, VAE)}
    runs = {
        model: start(["dvc", "repro", "-f", "-s", run.stage("train")], root)
        for model, run in files.items()
    }
    for model, process in runs.items():
        wait_until_locked(root, files[model].run.root, process)
    assert all(p.poll() is None for p in runs.values()), "both stages run at the same time"
    for model, process in runs.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{model}: {err[-3000:]}"
    summaries = [json.loads((root / files[m].run.summary).read_text()) for m in runs]
    assert all(s["steps"] == 150 for s in summaries)
    assert {run.stage("train") for run in files.values()} <= recorded_stages(root)
