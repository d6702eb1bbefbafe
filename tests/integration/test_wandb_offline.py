"""W&B unreachable: the training run completes, logs offline with one warning, and the offline
run file holds the logged metrics for a later `wandb sync`."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from ..support.wandb_files import artifacts, history_rows
from .test_resume import train_command

pytestmark = pytest.mark.timeout(300)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_run_completes_offline_with_one_warning(tmp_path, digits_dir):
    command = [
        "logger.mode=auto" if arg == "logger.mode=offline" else arg
        for arg in train_command(tmp_path, digits_dir, "logger.init_timeout=2", steps=20)
    ]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env.pop("WANDB_SILENT", None)  # what a user's shell has: the SDK may speak too
    env.update(WANDB_API_KEY="0" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}")
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )

    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr  # Hydra logs to stdout
    wandb_lines = [line for line in output.splitlines() if "W&B" in line or "wandb:" in line]
    assert len(wandb_lines) == 1, output[-3000:]
    assert "unreachable" in wandb_lines[0] and "wandb sync" in wandb_lines[0]
    run_files = list((tmp_path / "run/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    rows = history_rows(run_files[0])
    losses = [row["train/loss_g"] for row in rows if "train/loss_g" in row]
    assert len(losses) >= 2 and all(isinstance(v, float) for v in losses)
    assert any(key.startswith("samples/") for row in rows for key in row), "and sample grids"
    steps = [row["trainer/global_step"] for row in rows if "train/loss_g" in row]
    assert steps == sorted(steps) and steps[-1] > 0


def test_export_logs_the_model_and_its_card_as_a_wandb_model_artifact(tmp_path, digits_dir):
    from genlab.stages.export import run_export
    from genlab.stages.train import run_train

    from ..conftest import compose_config_dir, tiny_model_overrides

    cfg = compose_config_dir(
        *tiny_model_overrides("dcgan"),
        f"data.dir={digits_dir}",
        f"paths.run_dir={tmp_path / 'run'}",
        f"paths.export_dir={tmp_path / 'export'}",
        f"paths.metrics_dir={tmp_path / 'metrics'}",
        "logger.mode=offline",
        "train.steps=3",
        "export.grid_images=4",
    )
    summary = run_train(cfg)
    run_export(cfg)

    logged = [
        artifact
        for run_file in (tmp_path / "run/wandb").glob("offline-run-*/run-*.wandb")
        for artifact in artifacts(run_file)
    ]
    assert len(logged) == 1, logged
    (model,) = logged
    assert model["type"] == "model" and model["name"] == "dcgan-generator"
    assert f"run-{summary['run_id']}" in model["aliases"]
    assert model["metadata"]["run_id"] == summary["run_id"]
    assert {"MODEL_CARD.md", "generator.onnx", "generator.torchscript.pt"} <= set(model["files"])
