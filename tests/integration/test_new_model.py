"""Adding a model is one conf file and one line in params.yaml: nothing in dvc.yaml, the code or
the tests names the models, so the new one trains, evaluates, exports, and is ranked and shown."""

from __future__ import annotations

import json

import pytest

from ..support.dvc_project import edit_yaml, git_commit, make_project_repo, run, run_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NEW = "dcgan_narrow"


def test_a_new_model_config_goes_through_every_stage(tmp_path):
    root = make_project_repo(tmp_path, models=["vae"])
    dcgan = (root / "conf/model/dcgan.yaml").read_text()
    (root / f"conf/model/{NEW}.yaml").write_text(
        dcgan.replace("name: dcgan", f"name: {NEW}").replace(
            "base_channels: 32", "base_channels: 8"
        )
    )
    edit_yaml(root / "params.yaml", {"pipeline": {"models": ["vae", NEW]}})
    git_commit(root, f"add {NEW}")

    run(["dvc", "repro"], root)

    new = run_files(NEW, root=root)
    assert new.run.generator.is_file()
    metrics = json.loads(new.metrics.read_text())
    assert metrics["model"] == NEW and metrics["fid"] > 0
    assert (new.export / "MODEL_CARD.md").is_file()
    assert (new.export / "generator.onnx").is_file()
    board = json.loads((root / "leaderboard/leaderboard.json").read_text())
    assert sorted(board["ranking"]) == sorted(["vae", NEW])
    assert f"| {NEW} |" in (root / "leaderboard/leaderboard.md").read_text()
    page = (root / "leaderboard/report.html").read_text()
    assert f'data-model="{NEW}"' in page and f"training curves of {NEW}" in page
    # DVC templates the new model's training curves from the train stage's plots
    plots = json.loads(run(["dvc", "plots", "show", "--json"], root).stdout)
    curves = str(run_files(NEW).run.metrics_csv)  # as dvc.yaml names it
    assert curves in plots["data"] or any(curves in key for key in plots["data"]), sorted(
        plots["data"]
    )
    # ... and overlays them on the others' (a column per model in the report's tables)
    header = (root / "leaderboard/curves/train_loss_g.csv").read_text().splitlines()[0]
    assert header.split(",") == ["step", *board["ranking"]] and NEW in header
    # and only the new file and the params line changed
    changed = run(["git", "show", "--name-only", "--format=", "HEAD"], root).stdout.split()
    assert sorted(changed) == sorted([f"conf/model/{NEW}.yaml", "params.yaml"])
