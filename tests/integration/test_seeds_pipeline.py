"""Seeds as a pipeline axis, in a real DVC project: params.yaml's pipeline.seeds = [0, 1] makes
`dvc repro` train and evaluate one model twice, one run per seed, each in its own run folder
(runs/<run name>) with its own metrics file (and export), and both W&B runs grouped under the
model's name; and a forced re-run of the classifier changes no byte, so DVC re-runs nothing
downstream."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from ..support.dvc_project import make_project_repo, run, run_files
from ..support.wandb_files import run_records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "dcgan"  # one model: the seeds axis is what is tested
SEEDS = [0, 1]


def test_each_seed_is_its_own_run_from_train_to_export(tmp_path):
    root = make_project_repo(tmp_path, models=[MODEL], seeds=SEEDS)
    runs = [run_files(MODEL, seed, root) for seed in SEEDS]

    # the first seed up to export, the others up to evaluate (their export is the same stage
    # with the same run name: tests/unit/test_layout.py); compare and report are tested apart
    first, *others = runs
    targets = [first.stage("export"), *(files.stage("evaluate") for files in others)]
    run(["dvc", "repro", *targets], root)

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for files in runs:
        for stage in ("train", "evaluate", *(["export"] if files is first else [])):
            assert files.stage(stage) in lock["stages"], sorted(lock["stages"])
    assert len({files.run.root for files in runs}) == len(SEEDS)

    weights = [load_file(files.run.generator) for files in runs]
    assert weights[0].keys() == weights[1].keys()
    assert any(not weights[0][key].equal(weights[1][key]) for key in weights[0]), (
        "two seeds trained the same weights"
    )
    summaries = [json.loads(files.run.summary.read_text()) for files in runs]
    assert summaries[0]["run_id"] != summaries[1]["run_id"]

    for files, summary in zip(runs, summaries, strict=True):
        metrics = json.loads(files.metrics.read_text())
        assert (metrics["model"], metrics["seed"], metrics["run_name"]) == (
            MODEL,
            files.seed,
            files.name,
        )
        assert metrics["run_id"] == summary["run_id"]
        assert files.nearest_training.is_file()

        run_files_of_wandb = sorted(files.run.root.glob("wandb/offline-run-*/run-*.wandb"))
        trains = [
            record
            for path in run_files_of_wandb
            for record in run_records(path)
            if record["job_type"] == "train"
        ]
        assert [record["id"] for record in trains] == [summary["run_id"]], run_files_of_wandb
        assert trains[0]["group"] == MODEL  # one model's seeds side by side in W&B
        assert trains[0]["name"].startswith(files.name)
    export = json.loads((first.export / "export.json").read_text())
    assert export["provenance"]["run_id"] == summaries[0]["run_id"]
    assert not others[0].export.exists()

    # Byte-reproducible outputs, as DVC sees them: re-running the classifier with identical
    # inputs rewrites identical files, so nothing downstream (every evaluate) runs again.
    classifier_outputs = {
        path: path.read_bytes() for path in (root / "models" / "classifier").glob("*")
    }
    forced = run(["dvc", "repro", "-f", "-s", "train_classifier"], root)
    assert "Running stage 'train_classifier'" in forced.stdout, forced.stdout
    assert {p: p.read_bytes() for p in classifier_outputs} == classifier_outputs
    again = run(["dvc", "repro", *targets], root)
    assert "Running stage" not in again.stdout, again.stdout
