"""A folder without class subfolders: every stage runs, the classifier extractor falls back to a
self-supervised (rotation) network trained on the images, and the metrics say so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from genlab.errors import StageInputError
from genlab.layout import metrics_file
from genlab.stages.evaluate import run_evaluate
from genlab.stages.export import run_export
from genlab.stages.fetch import run_fetch
from genlab.stages.train import run_train
from genlab.stages.train_classifier import run_train_classifier

from ..conftest import compose_config_dir, pipeline_paths_under, tiny_model_overrides
from ..support.images import shape_image

pytestmark = pytest.mark.timeout(300)


def unlabelled_config(root: Path, *extra: str):
    images = root / "images"
    images.mkdir(exist_ok=True)
    for index in range(60):
        shape_image("circles" if index % 2 else "squares", index).save(images / f"{index}.png")
    return compose_config_dir(
        "data=folder",
        f"data.source.path={images}",
        "data.image_size=32",
        "data.batch_size=16",
        *pipeline_paths_under(root),
        "metrics.classifier.epochs=1",
        "logger=csv",
        "train.steps=3",
        "evaluate.num_samples=40",
        "evaluate.kid_subset_size=20",
        "evaluate.kid_subsets=5",
        "export.grid_images=4",
        *tiny_model_overrides("dcgan"),
        *extra,
    )


def test_unlabelled_folder_trains_evaluates_and_exports(tmp_path):
    cfg = unlabelled_config(tmp_path)
    meta = run_fetch(cfg)
    assert meta["labelled"] is False and meta["classes"] == []
    report = run_train_classifier(cfg)
    assert report["objective"].startswith("self-supervised") and report["num_classes"] == 4
    run_train(cfg)
    metrics = run_evaluate(cfg)
    assert metrics["extractor_objective"].startswith("self-supervised: predict the rotation")
    assert metrics["isc_mean"] is None and metrics["floor"]["isc_mean"] is None
    assert math.isfinite(metrics["fid"]) and math.isfinite(metrics["kid_mean"])
    written = metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name)
    assert json.loads(written.read_text())["isc_mean"] is None
    run_export(cfg)
    card = (tmp_path / "export/MODEL_CARD.md").read_text()
    assert "**Extractor trained for:** self-supervised" in card


def test_unlabelled_folder_with_fail_says_what_to_do(tmp_path):
    cfg = unlabelled_config(tmp_path, "metrics.classifier.unlabelled=fail")
    run_fetch(cfg)
    with pytest.raises(StageInputError, match="metrics.classifier.unlabelled=self_supervised"):
        run_train_classifier(cfg)


def test_conditioning_on_an_unlabelled_folder_is_refused_at_train_time(tmp_path):
    """model.conditioning=class needs the classes the dataset names: an unlabelled folder is
    refused by the train script with one line naming the setting, before any training."""
    import subprocess
    import sys

    from ..conftest import PROJECT_ROOT

    cfg = unlabelled_config(tmp_path)
    run_fetch(cfg)
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            "data=folder",
            f"data.dir={cfg.data.dir}",
            f"paths.run_dir={tmp_path / 'run'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "model.conditioning=class",
            "logger=csv",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "model.conditioning" in lines[0] and "names no classes" in lines[0], lines[0]
    assert not (tmp_path / "run/generator.safetensors").exists()
