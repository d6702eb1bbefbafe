"""What an edit to genlab's code re-runs, both ways: DVC's deps and the resume fingerprint give
the same answer (genlab.code_deps). The datamodule decides the batch order, so editing it
re-runs training and starts a killed run afresh; the report module does neither."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT
from ..support.dvc_project import make_project_repo, run, run_files
from ..support.training import run_tiny_training

pytestmark = pytest.mark.timeout(600)

KILL = "tests.support.planted.KillAtIteration"


def touch_code(path: Path) -> None:
    """An edit a reviewer would call harmless, that changes the file's bytes."""
    path.write_text(path.read_text() + "\n# edited by a test\n")


def train(tmp_path: Path, digits_dir: Path, source_root: Path, *extra: str):
    """genlab from the scratch copy (edited by the test); tests/ for the planted callback."""
    return run_tiny_training(
        tmp_path,
        digits_dir,
        "train.steps=30",
        "train.checkpoint_every_n_steps=5",
        "train.sample_every_n_steps=100",
        *extra,
        python_path=f"{source_root}{os.pathsep}{PROJECT_ROOT}",
    )


def kill_at(iteration: int) -> list[str]:
    return [f"+callbacks.kill._target_={KILL}", f"+callbacks.kill.iteration={iteration}"]


def test_only_an_edit_to_the_training_code_discards_a_killed_runs_checkpoints(tmp_path, digits_dir):
    source_root = tmp_path / "src"
    shutil.copytree(
        PROJECT_ROOT / "src/genlab",
        source_root / "genlab",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    run_id_file = tmp_path / "run/checkpoints/run_id"

    killed = train(tmp_path, digits_dir, source_root, *kill_at(12))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "run/checkpoints/last.ckpt").is_file()
    first_id = run_id_file.read_text().strip()

    touch_code(source_root / "genlab/reporting/report.py")
    killed_again = train(tmp_path, digits_dir, source_root, *kill_at(22))
    assert killed_again.returncode == -9, killed_again.stderr[-3000:]
    assert "Resuming from" in killed_again.stdout
    assert run_id_file.read_text().strip() == first_id, "a fresh start would take a new run id"

    touch_code(source_root / "genlab/data/datamodule.py")
    finished = train(tmp_path, digits_dir, source_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "config or code changed" in finished.stdout
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert summary["resumed"] is False and summary["run_id"] != first_id


def stages_out_of_date(root: Path, target: str) -> str:
    return run(["dvc", "status", target], root).stdout


def test_dvc_status_lists_training_after_a_datamodule_edit_and_not_after_a_report_edit(
    tmp_path,
):
    root = make_project_repo(tmp_path, models=["dcgan"])
    train = run_files("dcgan").stage("train")
    run(["dvc", "repro", train], root)
    assert "up to date" in stages_out_of_date(root, train)

    touch_code(root / "src/genlab/reporting/report.py")
    assert "up to date" in stages_out_of_date(root, train)
    assert "report:" in stages_out_of_date(root, "report")  # the report does see it

    touch_code(root / "src/genlab/data/datamodule.py")
    status = stages_out_of_date(root, train)
    assert f"{train}:" in status and "src/genlab/data" in status, status
