"""compare: one leaderboard of every model's metrics with their confidence intervals, beside the
real-vs-real floor and each network's untrained score, naming the models whose intervals of the
ranked score overlap (not distinguishable at these sample counts), with each model's per-class
figures (accuracy, intra-class KID, worst class, a link to its class grid), as JSON (for `dvc
metrics`), Markdown and CSV (for `dvc plots`)."""

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
    read_seed_metrics,
    scores_csv,
)
from genlab.stages.entry import stage_main

INSTANTIATES: tuple[str, ...] = ()  # builds nothing from a _target_ node


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_compare, cfg, INSTANTIATES)


def _from_params(cfg: DictConfig, key: str, example: str) -> list[Any]:
    """compare.<key>, or (null) params.yaml's pipeline.<key>: the list dvc.yaml runs."""
    given = OmegaConf.select(cfg, f"compare.{key}")
    if given is not None:
        return list(given)
    path = Path(cfg.compare.params_file)
    if not path.is_file():
        raise StageInputError(
            f"{path} not found: give the {key} with compare.{key}={example} or point "
            f"compare.params_file at the params.yaml whose pipeline.{key} lists them"
        )
    listed = OmegaConf.select(OmegaConf.load(path), f"pipeline.{key}")
    if not listed:
        raise StageInputError(f"{path} has no pipeline.{key} list; set compare.{key}={example}")
    return list(listed)


def models_to_compare(cfg: DictConfig) -> list[str]:
    return [str(model) for model in _from_params(cfg, "models", "[dcgan,vae]")]


def seeds_to_compare(cfg: DictConfig) -> list[int]:
    """The seeds each model ran with; the first one's run gives the single-run numbers."""
    seeds = _from_params(cfg, "seeds", "[0,1,2]")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool)]
    if bad or len(set(seeds)) != len(seeds):
        raise StageInputError(
            f"seeds {seeds}: not a list of distinct integers (compare.seeds or "
            f"{cfg.compare.params_file}'s pipeline.seeds), e.g. [0, 1, 2]"
        )
    return seeds


def run_compare(cfg: DictConfig) -> dict[str, Any]:
    models, seeds = models_to_compare(cfg), seeds_to_compare(cfg)
    per_seed = read_seed_metrics(Path(cfg.paths.metrics_dir), models, seeds)
    first = {model: runs[seeds[0]] for model, runs in per_seed.items()}
    board = build_leaderboard(first, cfg.compare.rank_by, per_seed, Path(cfg.paths.metrics_dir))
    files = leaderboard_files(cfg.compare.out_dir)
    write_json(files["json"], board)
    markdown = leaderboard_markdown(board, link_from=Path(files["markdown"]).parent)
    write_text(files["markdown"], markdown)
    write_text(files["scores"], scores_csv(board))
    print(markdown)
    return board
