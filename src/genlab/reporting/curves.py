"""Training curves across models: read from each run's CSVLogger file, and written back as one
table per metric (a column per model) so that `dvc plots` can overlay every model of
``pipeline.models`` without dvc.yaml naming any of them."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from genlab.io import atomic_dir, write_text
from genlab.layout import RunLayout, curve_table

# CSVLogger columns that are bookkeeping or 0/1 flags, not curves worth a panel
NOT_CURVES = ("epoch", "step")
NOT_CURVE_PREFIXES = ("health/",)

Curves = dict[str, list[tuple[float, float]]]

# TensorBoard's default smoothing: the functions' default (the pipeline sets report.smoothing)
DEFAULT_SMOOTHING = 0.6


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average (``weight`` of the past, 0: the
    raw series, towards 1: smoother) with its start-up bias removed, so the first points are
    not pulled towards zero. GAN losses swing from step to step; the trend is what to read."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight {weight}: must be in [0, 1)")
    smoothed, last = [], 0.0
    for index, value in enumerate(values, start=1):
        last = last * weight + (1.0 - weight) * value
        smoothed.append(last / (1.0 - weight**index))
    return smoothed


def read_curves(csv_path: Path) -> Curves:
    """(step, value) per metric from a CSVLogger file. Lightning writes one row per log call
    with empty cells for metrics not logged in that call, so every cell is optional."""
    curves: Curves = {}
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = _as_float(row.get("step"))
            if step is None:
                continue
            for name, cell in row.items():
                if name is None or name in NOT_CURVES or name.startswith(NOT_CURVE_PREFIXES):
                    continue
                value = _as_float(cell)
                if value is not None:
                    curves.setdefault(name, []).append((step, value))
    return curves


def _as_float(cell: str | None) -> float | None:
    if cell is None or cell.strip() == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def curve_tables(curves_by_model: dict[str, Curves]) -> dict[str, str]:
    """{metric: CSV text}: ``step`` and one column per model, an empty cell where a model did
    not log the metric at that step (or at all: DVC then draws no line for it)."""
    models = list(curves_by_model)
    metrics = sorted({name for curves in curves_by_model.values() for name in curves})
    tables = {}
    for metric in metrics:
        by_step: dict[float, dict[str, float]] = {}
        for model, curves in curves_by_model.items():
            for step, value in curves.get(metric, []):
                by_step.setdefault(step, {})[model] = value
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", *models])
        for step in sorted(by_step):
            row = by_step[step]
            writer.writerow([_number(step), *(_number(row.get(model)) for model in models)])
        tables[metric] = out.getvalue()
    return tables


def write_curve_tables(
    runs_dir: str | os.PathLike, runs: dict[str, str], out_dir: Path
) -> list[Path]:
    """One CSV per metric in ``out_dir`` (replacing the folder), a column per model (``runs``:
    model -> the run folder its curves come from, the first seed's run): dvc.yaml's plots name
    the columns by ``pipeline.models``."""
    curves_by_model = {}
    for model, run in runs.items():
        csv_path = RunLayout.at(Path(runs_dir) / run).metrics_csv
        curves_by_model[model] = read_curves(csv_path) if csv_path.is_file() else {}
    tables = curve_tables(curves_by_model)
    with atomic_dir(out_dir) as staging:  # the folder is swapped in whole: no stale tables
        for metric, text in tables.items():
            write_text(staging / curve_table(metric), text)
    return [out_dir / curve_table(metric) for metric in tables]


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
