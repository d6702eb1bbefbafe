"""DDP on two CPU processes (gloo): one output folder, one W&B run, one set of checkpoints,
identical weights on both ranks, and a killed run that resumes. Real processes throughout:
Lightning's launcher re-executes the training script for rank 1."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import yaml

from ..support.dvc_project import edit_yaml, git_commit, make_project_repo, run, run_files
from .test_resume import run_to_end, start_training, train_command, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]


def test_two_processes_train_one_run(tmp_path, digits_dir):
    command = train_command(tmp_path, digits_dir, *DDP, "train.sample_every_n_steps=10", steps=30)
    summary = run_to_end(command, tmp_path)

    assert summary["world_size"] == 2 and summary["steps"] == 30
    assert summary["batch_size_per_device"] == 16 and summary["batch_size_global"] == 32
    assert summary["replica_max_abs_diff"] == 0.0, "ranks must hold identical weights"
    run_dir = tmp_path / "run"
    assert (run_dir / "checkpoints/run_id").read_text().strip() == summary["run_id"]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1, "one W&B run per job"
    hydra_logs = sorted(p.name for p in (tmp_path / "hydra").glob("*.log"))
    assert hydra_logs == ["train.log", "train_ddp_process_1.log"], "one output folder, all ranks"
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step_000010.png",
        "step_000020.png",
        "step_000030.png",
    ]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.ckpt",
        "run_id",
        "training_fingerprint",
    ]
    logged = yaml.safe_load((run_dir / "csv/hparams.yaml").read_text())
    assert logged == {"world_size": 2, "batch_size_per_device": 16, "batch_size_global": 32}


def test_killed_ddp_run_resumes(tmp_path, digits_dir):
    command = train_command(tmp_path, digits_dir, *DDP, "train.checkpoint_every_n_steps=20")
    last = tmp_path / "run/checkpoints/last.ckpt"
    process = start_training(command, tmp_path, new_session=True)
    wait_until(last.is_file, process)
    os.killpg(process.pid, signal.SIGKILL)  # both ranks, as a cluster's kill does
    process.wait()
    assert last.is_file() and not (tmp_path / "run/generator.safetensors").exists()
    run_id = (tmp_path / "run/checkpoints/run_id").read_text().strip()

    summary = run_to_end(command, tmp_path)
    assert summary["resumed"] is True and 0 < summary["resumed_from_step"] < 300
    assert summary["steps"] == 300 and summary["run_id"] == run_id
    assert summary["replica_max_abs_diff"] == 0.0


def test_dvc_repro_with_the_ddp_trainer(tmp_path):
    root = make_project_repo(tmp_path, models=["dcgan"])
    edit_yaml(root / "params.yaml", {"pipeline": {"trainer": "ddp"}})
    edit_yaml(root / "conf/trainer/ddp.yaml", {"accelerator": "cpu"})
    git_commit(root, "ddp")
    dcgan = run_files("dcgan", root=root)
    train = dcgan.stage("train")
    run(["dvc", "repro", train], root)
    summary = json.loads(dcgan.run.summary.read_text())
    assert summary["world_size"] == 2 and summary["replica_max_abs_diff"] == 0.0
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert train in lock["stages"]
    assert run(["dvc", "status", train], root).stdout.strip().endswith("up to date.")


def test_other_ranks_wait_for_rank_zero_to_prepare_the_folder(tmp_path):
    """On SLURM every rank starts at once: rank 1 must read rank 0's run id, not make one."""
    from genlab.training.checkpoints import prepare_checkpoint_dir

    folder = tmp_path / "checkpoints"
    seen = {}

    def rank_one() -> None:
        seen["rank1"] = prepare_checkpoint_dir(folder, "fp", True, 100, is_global_zero=False)

    waiting = threading.Thread(target=rank_one)
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive(), "rank 1 must wait while rank 0 has not decided"
    decided = prepare_checkpoint_dir(folder, "fp", True, 100, is_global_zero=True)
    waiting.join(timeout=10)
    assert seen["rank1"] == decided == (False, (folder / "run_id").read_text().strip())


def test_labels_shard_with_their_images_under_ddp(tmp_path, digits_dir):
    """A conditional DCGAN on two ranks: both finish, the generator is conditional, and every
    (image, label) pair each rank trained on is one of the dataset's."""
    import hashlib
    import subprocess

    from genlab.data.store import read_split
    from genlab.models.generator_file import load_generator

    from .test_resume import PROJECT_ROOT

    extra_conf, seen = tmp_path / "my_conf", tmp_path / "seen"
    (extra_conf / "callbacks").mkdir(parents=True)
    (extra_conf / "callbacks/with_labels.yaml").write_text(
        "defaults:\n  - default\n  - _self_\nlabels:\n"
        "  _target_: tests.support.planted.RecordBatchLabels\n  _partial_: true\n"
        f"  out_dir: {seen}\n"
    )
    command = train_command(
        tmp_path,
        digits_dir,
        *DDP,
        "model.conditioning=class",
        f"hydra.searchpath=[file://{extra_conf}]",
        "callbacks=with_labels",
        steps=8,
    )
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replica_max_abs_diff"] == 0.0
    generator, record = load_generator(tmp_path / "run/generator.safetensors")
    assert generator.num_classes == 10 and record["class_names"] == [str(d) for d in range(10)]

    train = read_split(digits_dir, "train")
    labels_of: dict[str, set[int]] = {}
    for image, label in zip(train.images, train.labels.tolist(), strict=True):
        labels_of.setdefault(hashlib.sha256(image.tobytes()).hexdigest(), set()).add(label)
    ranks = [json.loads((seen / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [rank["world_size"] for rank in ranks] == [2, 2]
    for rank in ranks:
        assert len(rank["pairs"]) == 8 * 16  # 8 steps of the per-device batch
        for digest, label in rank["pairs"]:
            assert label in labels_of[digest], f"image {digest[:12]} came with label {label}"
    # the ranks train on different shards of the same data order
    assert {d for d, _ in ranks[0]["pairs"]} != {d for d, _ in ranks[1]["pairs"]}
