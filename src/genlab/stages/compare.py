"""compare: one leaderboard of every model's metrics with their confidence intervals, beside the
real-vs-real floor and each network's untrained score, naming the models whose intervals of the
ranked score overlap (not distinguishable at these sample counts), as JSON (for `dvc metrics`),
Markdown and CSV (for `dvc plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.errors import StageInputError
from genlab.io import write_json, write_text
from genlab.layout import leaderboard_files
from genlab.reporting.leaderboard import (
    build_leaderboard,
    leaderboard_markdown,
    read_metrics,
    scores_csv,
)
from genlab.stages.entry import stage_main

INSTANTIATES: tuple[str, ...] = ()  # builds nothing from a _target_ node


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_compare, cfg, INSTANTIATES)


def models_to_compare(cfg: DictConfig) -> list[str]:
    if cfg.compare.models is not None:
        return list(cfg.compare.models)
    path = Path(cfg.compare.params_file)
    if not path.is_file():
        raise StageInputError(
            f"{path} not found: give the models with compare.models=[dcgan,vae] or point "
            f"compare.params_file at the params.yaml whose pipeline.models lists them"
        )
    models = OmegaConf.select(OmegaConf.load(path), "pipeline.models")
    if not models:
        raise StageInputError(f"{path} has no pipeline.models list; set compare.models=[...]")
    return list(models)


def run_compare(cfg: DictConfig) -> dict[str, Any]:
    models = models_to_compare(cfg)
    board = build_leaderboard(
        read_metrics(Path(cfg.paths.metrics_dir), models), cfg.compare.rank_by
    )
    files = leaderboard_files(cfg.compare.out_dir)
    write_json(files["json"], board)
    write_text(files["markdown"], leaderboard_markdown(board))
    write_text(files["scores"], scores_csv(board))
    print(leaderboard_markdown(board))
    return board
