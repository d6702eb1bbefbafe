"""dvc.yaml's outputs are the files genlab.layout names (with the folders of conf/paths.yaml), so
a renamed output cannot leave DVC tracking a file that is no longer written."""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab import layout
from genlab.layout import RunLayout

from ..support.dvc_project import (
    PROJECT_ROOT,
    dvc_stages,
    edit_yaml,
    run_files,
    stage_command,
)


def expected_outputs(stage: str, cfg: dict) -> set[Path]:
    paths = cfg["paths"]
    run = paths["run_name"]
    return {
        "fetch": {Path(cfg["data"]["dir"])},
        "train_classifier": {
            Path(paths["classifier"]),
            Path(paths["classifier"]).with_suffix(".json"),
        },
        "train": RunLayout.at(paths["run_dir"]).dvc_outputs(),
        "evaluate": {
            layout.metrics_file(paths["metrics_dir"], run),
            layout.nearest_training_image(paths["metrics_dir"], run),
            layout.class_grid(paths["metrics_dir"], run),
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


PER_RUN_STAGES = ("train", "evaluate", "export")


def resolved_stages(root: Path) -> dict[str, dict]:
    """The stages DVC resolves from ``root``'s dvc.yaml and params.yaml: command, outputs."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            stage.name: {
                "cmd": stage.cmd,
                "outs": {Path(str(o.def_path)) for o in stage.outs},
            }
            for stage in repo.index.stages
        }


def test_each_model_and_seed_is_one_run_named_by_the_layout(tmp_path, compose_config):
    """dvc.yaml spells the run name (<model>-seed<seed>) itself: its train / evaluate / export
    instances, one per model and seed of params.yaml, write exactly the files that
    layout.run_name(model, seed) names, and are named train@<model>-<seed>."""
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_text((PROJECT_ROOT / name).read_text())
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc/config").write_text("[core]\n    no_scm = true\n")  # DVC without git
    models, seeds = ["dcgan", "vae"], [0, 3]
    edit_yaml(tmp_path / "params.yaml", {"pipeline": {"models": models, "seeds": seeds}})
    stages = resolved_stages(tmp_path)
    exports = Path(compose_config().paths.export_dir).parent  # conf/paths.yaml's exports/

    for stage in PER_RUN_STAGES:
        instances = {address for address in stages if address.startswith(f"{stage}@")}
        # as tests/support names them (RunFiles.stage), so every DVC test addresses real stages
        assert instances == {run_files(m, s).stage(stage) for m in models for s in seeds}
    for model in models:
        for seed in seeds:
            run = layout.run_name(model, seed)
            run_dir = Path(layout.RUNS_DIR) / run
            expected = {
                "train": RunLayout.at(run_dir).dvc_outputs(),
                "evaluate": {
                    layout.metrics_file(layout.METRICS_DIR, run),
                    layout.nearest_training_image(layout.METRICS_DIR, run),
                    layout.class_grid(layout.METRICS_DIR, run),
                },
                "export": {exports / run},
            }
            for stage in PER_RUN_STAGES:
                instance = stages[run_files(model, seed).stage(stage)]
                assert instance["outs"] == expected[stage], (stage, model, seed)
                assert {f"model={model}", f"seed={seed}"} <= set(instance["cmd"].split())


def test_paths_run_name_is_the_layouts_run_name(compose_config):
    """conf/paths.yaml names a run as genlab.layout does, and puts its folders under that name."""
    cfg = compose_config("model=vae", "seed=3")
    run = layout.run_name("vae", 3)
    assert cfg.paths.run_name == run
    assert Path(cfg.paths.run_dir) == Path(layout.RUNS_DIR) / run
    assert Path(cfg.paths.export_dir).name == run
    default = compose_config("model=vae")  # the default config's seed
    assert default.paths.run_name == layout.run_name("vae", default.seed)


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
