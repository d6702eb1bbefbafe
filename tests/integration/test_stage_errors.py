"""Stage scripts turn missing or broken inputs into one clear message and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genlab.layout import stage_instance

from ..conftest import PROJECT_ROOT

pytestmark = pytest.mark.timeout(120)


def run_stage(stage: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / f"pipelines/{stage}.py"),
            f"hydra.run.dir={tmp_path / 'hydra'}",
            f"paths.run_dir={tmp_path / 'run'}",
            f"paths.metrics_dir={tmp_path / 'metrics'}",
            f"paths.export_dir={tmp_path / 'export'}",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.download_dir={tmp_path / 'downloads'}",
            *overrides,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
    )


@pytest.mark.parametrize("stage", ["evaluate", "export"])
def test_missing_generator(stage, tmp_path):
    result = run_stage(stage, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "generator.safetensors does not exist: train the model first" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "export").exists()


def test_truncated_generator(tmp_path):
    (tmp_path / "run").mkdir()
    # A safetensors header that promises more than the file holds.
    (tmp_path / "run/generator.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{")
    result = run_stage("export", tmp_path)
    assert result.returncode == 1
    assert "is corrupt or incomplete" in result.stderr
    assert f"re-run training (`dvc repro {stage_instance('train', 'dcgan', 0)}`)" in result.stderr
    assert not (tmp_path / "export").exists()


def test_missing_download_without_network_access(tmp_path):
    result = run_stage("fetch", tmp_path, "data=mnist", "data.source.download=false")
    assert result.returncode == 1, result.stderr
    assert "train-images-idx3-ubyte.gz" in result.stderr
    assert not (tmp_path / "data/mnist").exists()


def test_missing_dataset_for_training(tmp_path):
    result = run_stage("train", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Run the fetch stage first" in result.stderr
