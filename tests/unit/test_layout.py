"""dvc.yaml's outputs are the files genlab.layout names (with the folders of conf/paths.yaml), so
a renamed output cannot leave DVC tracking a file that is no longer written."""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab import layout
from genlab.layout import RunLayout

from ..support.dvc_project import dvc_stages, stage_command


def expected_outputs(stage: str, cfg: dict) -> set[Path]:
    paths = cfg["paths"]
    model = cfg["model"]["name"]
    return {
        "fetch": {Path(cfg["data"]["dir"])},
        "train_classifier": {
            Path(paths["classifier"]),
            Path(paths["classifier"]).with_suffix(".json"),
        },
        "train": RunLayout.at(paths["run_dir"]).dvc_outputs(),
        "evaluate": {
            layout.metrics_file(paths["metrics_dir"], model),
            layout.nearest_training_image(paths["metrics_dir"], model),
        },
        "export": {Path(paths["export_dir"])},
        "compare": set(layout.leaderboard_files(cfg["compare"]["out_dir"]).values()),
        "report": {Path(cfg["report"]["out_html"]), Path(cfg["report"]["curves_dir"])},
    }[stage]


@pytest.mark.parametrize("address", sorted(dvc_stages()))
def test_dvc_outputs_are_the_files_the_layout_names(address):
    script, cfg = stage_command(address)
    declared = {Path(out) for out in dvc_stages()[address]["outs"]}
    assert declared == expected_outputs(script.stem, cfg)


def test_report_reads_the_grid_names_the_callback_writes():
    pattern = layout.grid_pattern(layout.SAMPLE_GRID)
    match = pattern.match(RunLayout.at("runs/x").sample_grid(1500).name)
    assert match and int(match.group(1)) == 1500
    assert not pattern.match(RunLayout.at("runs/x").reconstruction_grid(1500).name)


def test_the_csv_logger_writes_where_the_layout_says(tmp_path, compose_config):
    """dvc.yaml's plots and the report read RunLayout.metrics_csv: the configured logger must
    write exactly there."""
    from genlab.tracking.identity import RunContext
    from genlab.training.components import build_components

    cfg = compose_config("logger=csv")
    run_layout = RunLayout.at(tmp_path / "run")
    context = RunContext(cfg, {}, "r1", run_layout, {})
    (logger,) = build_components(cfg.logger.lightning, context)
    logger.log_metrics({"train/loss": 1.5}, step=3)
    logger.save()
    assert run_layout.metrics_csv.read_text().splitlines()[0].split(",") == ["step", "train/loss"]
