"""dvc.yaml's outputs are the files genlab.layout names (with the folders of conf/paths.yaml), so
a renamed output cannot leave DVC tracking a file that is no longer written."""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab import layout
from genlab.layout import RunLayout

from ..support.dvc_project import PROJECT_ROOT, dvc_stages, stage_command


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


def test_checkpoints_and_logger_extras_are_neither_outputs_nor_hashed_as_dependencies():
    """A clone that `dvc pull`ed must see every stage up to date (test_dvc_remote.py): the
    checkpoint folders (a machine's crash-recovery area, never pushed), their moved-aside
    copies, the CSV logger's hparams.yaml and an old generator.pt are no stage's output, and
    .dvcignore keeps them out of the report stage's `runs` dependency, which hashes the run
    folders."""
    from dvc.repo import Repo
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    outputs = {Path(out) for stage in dvc_stages().values() for out in stage["outs"]}
    trains = [address for address in dvc_stages() if address.startswith("train@")]
    assert trains
    with Repo(str(PROJECT_ROOT)) as repo:
        for address in trains:
            run = RunLayout.at(stage_command(address)[1]["paths"]["run_dir"])
            stale = run.checkpoints.with_name(
                run.checkpoints.name + layout.STALE_CHECKPOINTS_SUFFIX.format(stamp="1", run_id="r")
            )
            hparams = run.metrics_csv.with_name(ExperimentWriter.NAME_HPARAMS_FILE)
            old_generator = run.root / layout.OLD_GENERATOR_FILE
            assert not {run.checkpoints, stale, hparams, old_generator} & outputs
            assert any(run.root.is_relative_to(dep) for dep in dvc_stages()["report"]["deps"])
            ignore = repo.dvcignore
            assert ignore.is_ignored_dir(str(PROJECT_ROOT / run.checkpoints))
            assert ignore.is_ignored_dir(str(PROJECT_ROOT / stale))
            assert ignore.is_ignored_file(str(PROJECT_ROOT / hparams))
            assert ignore.is_ignored_file(str(PROJECT_ROOT / old_generator))
            for kept in (run.metrics_csv, run.generator, run.summary):
                assert not ignore.is_ignored_file(str(PROJECT_ROOT / kept)), kept


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
