"""A user adds a Lightning callback with a config file alone: no genlab code changes."""

from __future__ import annotations

import json

import pytest

from ..support.training import run_tiny_training

pytestmark = pytest.mark.timeout(300)


def train(tmp_path, digits_dir, *overrides: str):
    return run_tiny_training(
        tmp_path, digits_dir, *overrides, "train.steps=6", "train.sample_every_n_steps=3"
    )


def test_a_callback_from_a_users_config_file_runs_beside_the_defaults(tmp_path, digits_dir):
    extra_conf = tmp_path / "my_conf"
    (extra_conf / "callbacks").mkdir(parents=True)
    record = tmp_path / "record.json"
    (extra_conf / "callbacks/with_record.yaml").write_text(
        "defaults:\n"
        "  - default\n"
        "  - _self_\n"
        "record:\n"
        "  _target_: tests.support.planted.RecordRun\n"
        "  _partial_: true\n"
        f"  out_file: {record}\n"
    )
    result = train(
        tmp_path, digits_dir, f"hydra.searchpath=[file://{extra_conf}]", "callbacks=with_record"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert json.loads(record.read_text()) == {"run_id": summary["run_id"], "iterations": 6}
    # the defaults still ran: sample grids, the loop timer's throughput, checkpoints
    assert sorted(p.name for p in (tmp_path / "run/samples").iterdir()) == [
        "step_000003.png",
        "step_000006.png",
    ]
    assert summary["images_per_s"] > 0 and (tmp_path / "run/checkpoints/last.ckpt").is_file()


def test_a_default_callback_is_dropped_by_setting_it_to_null(tmp_path, digits_dir):
    result = train(tmp_path, digits_dir, "callbacks.sample_grid=null")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "run/samples").exists()
    assert (tmp_path / "run/generator.safetensors").is_file()


def test_an_unknown_argument_in_a_callback_config_is_refused_before_training(tmp_path, digits_dir):
    result = train(tmp_path, digits_dir, "+callbacks.health.windw=5")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Unknown key `callbacks.health.windw`" in result.stderr
    assert "window" in result.stderr  # the arguments it does take
    assert not (tmp_path / "run").exists()
