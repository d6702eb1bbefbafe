"""SIGTERM saves a checkpoint and the re-run resumes from it; a full disk never costs the last
good checkpoint. Real processes, real signals, real Lightning checkpoints."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from .test_resume import (
    run_to_end,
    sigterm_after_first_grid,
    start_training,
    train_command,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)


def checkpoint_step(path) -> int:
    """Training iterations stored in a Lightning checkpoint (2 optimizer steps per GAN step)."""
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"] // 2


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes_from_it(tmp_path, digits_dir):
    command = train_command(tmp_path, digits_dir, "train.checkpoint_every_n_steps=1000")
    last = tmp_path / "run/checkpoints/last.ckpt"
    returncode, stderr = sigterm_after_first_grid(command, tmp_path)  # no periodic ckpt is due

    assert returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM at training step" in stderr and "Traceback" not in stderr
    stopped_at = int(stderr.split("stopped by SIGTERM at training step ")[1].split(";")[0])
    assert 100 <= stopped_at < 300
    assert checkpoint_step(last) == stopped_at
    assert not (tmp_path / "run/generator.safetensors").exists(), (
        "an interrupted run records no result"
    )
    assert not (tmp_path / "run/train_summary.json").exists()

    run_id = (tmp_path / "run/checkpoints/run_id").read_text().strip()
    summary = run_to_end(command, tmp_path)
    assert summary["resumed"] is True and summary["resumed_from_step"] == stopped_at
    assert summary["run_id"] == run_id, "the resumed run continues the same W&B run"
    assert summary["steps"] == 300


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, as SLURM's process tracking finds a job's processes
    (wandb-core runs in its own session, so a process-group signal would miss it)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            found += [child, *descendants(child)]
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:  # exited between the listing and now
        return ""


def running(pid: int) -> bool:
    """Not exited: a process its parent has not reaped yet (a zombie) has exited."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_to_every_process_of_the_job_still_saves_a_checkpoint(tmp_path, digits_dir):
    """SLURM's pre-emption signals a job's every process: W&B's service (wandb-core) exits at
    once, and the training's next metric or grid meets a dead socket. Here the service goes
    first, on purpose, and the training a moment later: logging to W&B must stop, not the run."""
    command = train_command(
        tmp_path,
        digits_dir,
        "train.checkpoint_every_n_steps=1000",
        "train.sample_every_n_steps=5",  # a grid logged to W&B every 5 steps
        "trainer.log_every_n_steps=1",  # and metrics at every step
    )
    process = start_training(command, tmp_path)
    wait_until(lambda: any((tmp_path / "run/samples").glob("step_*.png")), process)
    services = [pid for pid in descendants(process.pid) if process_name(pid) == "wandb-core"]
    assert services, "an offline W&B run has a wandb-core process"
    for pid in services:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(map(running, services)), process)
    grids = len(list((tmp_path / "run/samples").glob("step_*.png")))
    wait_until(  # training goes on without W&B: more grids, each one a failed W&B call before
        lambda: len(list((tmp_path / "run/samples").glob("step_*.png"))) >= grids + 3, process
    )
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM at training step" in stderr and "Traceback" not in stderr
    stopped_at = int(stderr.split("stopped by SIGTERM at training step ")[1].split(";")[0])
    assert checkpoint_step(tmp_path / "run/checkpoints/last.ckpt") == stopped_at
    training_log = (tmp_path / "hydra/train.log").read_text()
    assert "W&B's service process is gone (ConnectionResetError" in training_log
    assert "was not closed (its service process had stopped)" in training_log

    run_id = (tmp_path / "run/checkpoints/run_id").read_text().strip()
    summary = run_to_end([*command, "train.sample_every_n_steps=100"], tmp_path)
    assert summary["resumed"] is True and summary["resumed_from_step"] == stopped_at
    assert summary["steps"] == 300
    assert summary["run_id"] == run_id, "the resumed run continues the same W&B run"


def test_disk_full_keeps_the_last_good_checkpoint(tmp_path, digits_dir, monkeypatch, capsys):
    """The second checkpoint write fails half-way with ENOSPC, as a full disk does."""
    from lightning_fabric.plugins.io import torch_io

    from genlab.stages.entry import stage_main
    from genlab.stages.train import run_train

    from ..conftest import compose_config_dir

    real_save = torch_io._atomic_save
    calls = []

    def save_then_fill_the_disk(checkpoint, filepath):
        calls.append(str(filepath))
        if len(calls) == 1:
            return real_save(checkpoint, filepath)
        with open(filepath, "wb") as handle:
            handle.write(b"\x80\x02 half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))

    monkeypatch.setattr(torch_io, "_atomic_save", save_then_fill_the_disk)
    run_dir = tmp_path / "run"
    cfg = compose_config_dir(
        f"data.dir={digits_dir}",
        f"paths.run_dir={run_dir}",
        "logger=csv",
        "data.batch_size=16",
        "model.generator.base_channels=8",
        "model.discriminator.base_channels=8",
        "train.steps=30",
        "train.checkpoint_every_n_steps=10",
        "train.sample_every_n_steps=100",
    )
    with pytest.raises(SystemExit) as exit_info:
        stage_main(run_train, cfg)

    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "CheckpointWriteError" in message and "No space left on device" in message
    assert "the previous one is intact" in message
    assert len(calls) == 2
    assert checkpoint_step(run_dir / "checkpoints/last.ckpt") == 10
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "no half-written file left"
    assert (
        not (run_dir / "generator.safetensors").exists()
        and not (run_dir / "train_summary.json").exists()
    )


def test_truncated_checkpoint_is_refused_before_any_work(tmp_path, digits_dir):
    command = train_command(tmp_path, digits_dir, steps=30)
    run_to_end(command, tmp_path)
    last = tmp_path / "run/checkpoints/last.ckpt"
    whole = last.read_bytes()
    # Damaged after it was written (a copy cut short).
    last.write_bytes(whole[: len(whole) // 2])
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}

    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{last} cannot be loaded" in result.stderr and "truncated or corrupt" in result.stderr
    assert "train.resume=false" in result.stderr and "Traceback" not in result.stderr
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before, "a refused run must not write anything"


def test_a_finished_run_rerun_with_force_trains_again(tmp_path, digits_dir):
    """`dvc repro -f` deletes the outputs; resuming a finished checkpoint would not remake
    them, so the run starts over (and says why)."""
    command = train_command(tmp_path, digits_dir, steps=20)
    first = run_to_end(command, tmp_path)
    for path in (tmp_path / "run/samples").glob("*.png"):
        path.unlink()
    again = run_to_end(command, tmp_path)
    assert again["resumed"] is False and again["steps"] == 20
    assert again["run_id"] != first["run_id"]
    assert sorted(p.name for p in (tmp_path / "run/samples").glob("step_*.png"))
