"""An interrupted training run resumes from last.ckpt; a changed config starts fresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT

pytestmark = pytest.mark.timeout(300)


def train_command(tmp_path: Path, digits_dir: Path, *extra: str, steps: int = 300) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "pipelines/train.py"),
        f"data.dir={digits_dir}",
        f"paths.run_dir={tmp_path / 'run'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "logger.mode=offline",
        "data.batch_size=16",
        "model.generator.base_channels=8",
        "model.discriminator.base_channels=8",
        f"train.steps={steps}",
        "train.checkpoint_every_n_steps=10",
        "train.sample_every_n_steps=100",
        *extra,
    ]


def run_to_end(command: list[str], cwd: Path) -> dict:
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((cwd / "run/train_summary.json").read_text())


def start_training(command: list[str], cwd: Path, new_session: bool = False) -> subprocess.Popen:
    """A training process in the background; ``new_session`` gives DDP's ranks one group."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline"},
        start_new_session=new_session,
    )


def wait_until(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training ended early: {process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the training process"
        time.sleep(0.1)


def sigterm_after_first_grid(command: list[str], cwd: Path) -> tuple[int, str]:
    """SIGTERM a run once it has rendered its first sample grid (mid-run, mid-epoch)."""
    process = start_training(command, cwd)
    wait_until(lambda: any((cwd / "run/samples").glob("step_*.png")), process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_killed_run_resumes_from_last_checkpoint(tmp_path, digits_dir):
    command = train_command(tmp_path, digits_dir)
    last = tmp_path / "run/checkpoints/last.ckpt"
    process = start_training(command, tmp_path)
    wait_until(last.is_file, process)
    time.sleep(1.0)  # let a few more checkpoints land
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.is_file(), "no checkpoint was written before the kill"
    assert not (tmp_path / "run/generator.safetensors").exists(), "killed before the end: no result"
    first_run_id = (tmp_path / "run/checkpoints/run_id").read_text().strip()

    summary = run_to_end(command, tmp_path)
    assert summary["resumed"] is True
    assert 0 < summary["resumed_from_step"] < 300
    assert summary["steps"] == 300
    assert summary["run_id"] == first_run_id, "a resumed run must continue the same W&B run"

    changed = run_to_end(command + ["model.optim.lr=1e-4"], tmp_path)
    assert changed["resumed"] is False and changed["resumed_from_step"] == 0
    assert changed["run_id"] != first_run_id
