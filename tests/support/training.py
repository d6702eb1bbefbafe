"""A tiny real training run through the train stage's script, as a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_tiny_training(
    tmp_path: Path, digits_dir: Path, *overrides: str, python_path: str = str(PROJECT_ROOT)
) -> subprocess.CompletedProcess:
    """`pipelines/train.py` with a tiny DCGAN on ``digits_dir``, CSV logging, run folder
    ``tmp_path/run``; ``overrides`` come last and win. ``python_path``: where genlab (and
    ``tests`` for planted callbacks) are imported from."""
    from ..conftest import tiny_model_overrides

    command = [
        sys.executable,
        str(PROJECT_ROOT / "pipelines/train.py"),
        f"data.dir={digits_dir}",
        f"paths.run_dir={tmp_path / 'run'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "logger=csv",
        "data.batch_size=16",
        *tiny_model_overrides("dcgan"),
        *overrides,
    ]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=300,
    )


def train_quick_classifier(folder: Path, digits_dir: Path) -> Path:
    """The classifier a search's objective (and evaluation) extracts features with, trained
    in this process for one epoch (seconds): ``folder/classifier.pt``."""
    from genlab.data.store import read_split
    from genlab.evaluation.classifier_training import save_classifier, train_classifier

    model, report = train_classifier(
        read_split(digits_dir, "train"), read_split(digits_dir, "test"), epochs=1, seed=0
    )
    path = Path(folder) / "classifier.pt"
    save_classifier(model, path, report)
    return path
