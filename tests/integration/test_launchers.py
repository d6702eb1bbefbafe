"""The path to a cluster: submitit's local launcher runs real jobs here; the SLURM configs
compose into a launcher and a trainer that agree on nodes and tasks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import CONF_DIR, PROJECT_ROOT


def test_slurm_launcher_and_trainer_agree():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config", overrides=["hydra/launcher=slurm", "trainer=slurm"], return_hydra_config=True
        )
    launcher, trainer = cfg.hydra.launcher, cfg.trainer
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.nodes == trainer.num_nodes
    assert launcher.tasks_per_node == trainer.devices == launcher.gpus_per_node
    assert trainer.strategy.startswith("ddp") and launcher.timeout_min > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_submitit_local_runs_each_job_in_its_own_folder(tmp_path, digits_dir):
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            "-m",
            "hydra/launcher=submitit_local",
            "model=dcgan,vae",
            f"data.dir={digits_dir}",
            f"paths.run_dir={tmp_path}/runs/${{hydra:job.num}}",
            f"hydra.sweep.dir={tmp_path}/multirun",
            "logger=csv",
            "train.steps=5",
            "data.batch_size=16",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    models = {}
    for job in (0, 1):
        summary = json.loads((tmp_path / f"runs/{job}/train_summary.json").read_text())
        models[job] = summary["model"]
        assert summary["steps"] == 5
    assert sorted(models.values()) == ["dcgan", "vae"]
    run_ids = {(tmp_path / f"runs/{job}/checkpoints/run_id").read_text() for job in (0, 1)}
    assert len(run_ids) == 2, "each job is its own run"
    assert any((tmp_path / "multirun/.submitit").iterdir()), "jobs went through submitit"
