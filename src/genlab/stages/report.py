"""report: the comparison page (leaderboard with intervals and ties, training curves, sample
grids, scores against the sample count, what decides the numbers) as one offline HTML file, for
people who have neither a W&B account nor DVC's CDN-loaded plots."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from genlab.errors import StageInputError
from genlab.reporting import build_report
from genlab.reporting.curves import write_curve_tables
from genlab.reporting.report import first_runs
from genlab.stages.entry import stage_main

INSTANTIATES: tuple[str, ...] = ()  # builds nothing from a _target_ node


def main(cfg: DictConfig) -> Path:
    return stage_main(run_report, cfg, INSTANTIATES)


def run_report(cfg: DictConfig) -> Path:
    settings = cfg.report
    leaderboard = Path(settings.leaderboard)
    if not leaderboard.is_file():
        raise StageInputError(
            f"{leaderboard} not found: build the leaderboard first (`dvc repro compare`)"
        )
    out_html = build_report(
        leaderboard,
        Path(settings.runs_dir),
        Path(settings.out_html),
        metrics_dir=Path(cfg.paths.metrics_dir),
        title=settings.title,
        smoothing=settings.smoothing,  # range checked by config/schema.py
    )
    # a column per model (dvc.yaml's plots name them by pipeline.models): its first seed's run
    runs = {m: run.name for m, run in first_runs(json.loads(leaderboard.read_text())).items()}
    tables = write_curve_tables(settings.runs_dir, runs, Path(settings.curves_dir))
    print(f"report: {out_html} (open it in any browser; it loads nothing from the network)")
    print(f"report: {len(tables)} cross-model curve tables in {settings.curves_dir} (dvc plots)")
    return out_html
