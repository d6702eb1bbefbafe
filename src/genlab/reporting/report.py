"""One self-contained HTML page comparing the runs, for people without a W&B account.

Why not `dvc plots show`: its HTML loads Vega / Vega-Lite from a CDN (jsdelivr), so on a
machine without internet (or behind a proxy, or opened from an archived artifact years later) it
renders as an empty page. This page is built from the same files DVC tracks instead -- the
`compare` stage's metrics file ``leaderboard/leaderboard.json``, the `train` stages' plots files
``runs/<run name>/csv/metrics.csv`` (Lightning's CSVLogger), their sample grids, and the
`evaluate` stages' ``metrics/<run name>.json`` (scores against the sample count, what decides
the numbers) and nearest-training-image pictures -- and loads nothing from outside: the images
(the evaluate stage's class x seed grids too, beside each model's per-class table) are
embedded as base64 data URIs and the curves are drawn here with matplotlib (Agg) into PNGs,
embedded the same way. One file, written atomically, that any browser opens offline. The only
outside references are the links to synced W&B runs, which a reader may follow, never loads.
A model's pictures, curves and per-model sections come from its first seed's run (the
leaderboard row's ``run_name``); the tables give every seed's run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.checks import as_mapping, finite_number, is_number
from genlab.errors import StageInputError
from genlab.io import read_json_object, write_text
from genlab.layout import (
    CLASS_GRID,
    RECONSTRUCTION_GRID,
    RUNS_PAGE,
    SAMPLE_GRID,
    RunLayout,
    class_grid,
    grid_pattern,
    metrics_file,
    nearest_training_image,
    run_name,
    stage_instance,
)
from genlab.metric_keys import FID_INF, display_exponent, scaled_header
from genlab.reporting.curves import DEFAULT_SMOOTHING, read_curves, smooth
from genlab.reporting.leaderboard import (
    CLASS_SUMMARY_COLUMNS,
    FLOOR_LABEL,
    LEADERBOARD_COLUMNS,
    PER_CLASS_COLUMNS,
    PER_CLASS_SENTENCE,
    SEED_COLUMNS,
    SEEDS_SENTENCE,
    better_sentence,
    board_per_class,
    class_summary_rows,
    column_headers,
    drawn_note,
    format_number,
    leaderboard_rows,
    per_class_headers,
    per_class_rows,
    scaled,
    seed_column_headers,
    seed_notes,
    seed_rows,
    single_run_sentence,
    tie_notes,
)
from genlab.urls import web_link

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLES_RE = grid_pattern(SAMPLE_GRID)
RECONSTRUCTIONS_RE = grid_pattern(RECONSTRUCTION_GRID)


@dataclass(frozen=True)
class Picture:
    """An image ready for the page: the data URI and what a screen reader should say."""

    data_uri: str
    alt: str
    caption: str


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def picture_from_file(path: Path, alt: str, caption: str) -> Picture | None:
    """None when the file is absent or is not a PNG (the page says so instead of breaking)."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        return None
    return Picture(png_data_uri(data), alt, caption)


def latest_step_file(folder: Path, pattern: re.Pattern[str]) -> tuple[int, Path] | None:
    """The file of the highest training step matching ``pattern`` (``step_NNNNNN.png``)."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(found) if found else None


# a curve's colour; its raw series is drawn in the same colour at RAW_ALPHA behind the smoothed
CURVE_COLOR = "#1f77b4"
RAW_ALPHA = 0.25


def curves_png(
    model: str, curves: dict[str, list[tuple[float, float]]], smoothing: float = DEFAULT_SMOOTHING
) -> bytes:
    """One small panel per metric, step on x: the smoothed curve (curves.smooth, ``smoothing``
    its weight) over the raw series drawn faint. Figure + Agg canvas directly: no pyplot
    state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted(curves)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.4 * columns, 2.5 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(names):
            axis.set_visible(False)
            continue
        name = names[index]
        steps, values = zip(*curves[name], strict=True)
        axis.plot(steps, values, linewidth=1.0, color=CURVE_COLOR, alpha=RAW_ALPHA)
        axis.plot(steps, smooth(list(values), smoothing), linewidth=1.6, color=CURVE_COLOR)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{model}: training curves (EMA {smoothing:g}; raw faint behind)", fontsize=11)
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


# (key in a sample_counts curve, panel title)
SAMPLE_COUNT_PANELS = (("fid", "FID"), ("kid_mean", "KID"))
SAMPLE_COUNT_SERIES = (("model", "#1f77b4", "o"), ("floor", "#7f7f7f", "s"))


def _plottable(value: Any) -> bool:
    return finite_number(value) is not None  # NaN, inf, a 400-digit integer: not


def _series(value: Any) -> list[float] | None:
    """A list of finite numbers from a metrics file; None when it is anything else."""
    if isinstance(value, list) and all(_plottable(v) for v in value):
        return value
    return None


def malformed_curve_keys(sample_counts: Any) -> list[str]:
    """The dotted keys under ``sample_counts`` that are present but not what a curve holds
    (an object per set, lists of finite numbers, FID_inf a finite number): the plot leaves
    them out and the page names them."""
    bad = []
    for series, _, _ in SAMPLE_COUNT_SERIES:
        curve = sample_counts.get(series)
        if curve is None:
            continue
        if not isinstance(curve, Mapping):
            bad.append(series)
            continue
        for key in ("counts", *(k for k, _ in SAMPLE_COUNT_PANELS)):
            if curve.get(key) is not None and _series(curve[key]) is None:
                bad.append(f"{series}.{key}")
        if curve.get(FID_INF) is not None and not _plottable(curve[FID_INF]):
            bad.append(f"{series}.{FID_INF}")
    return [f"sample_counts.{key}" for key in bad]


def sample_count_png(
    model: str, sample_counts: dict[str, Any], extractor: str | None = None
) -> bytes:
    """FID and KID against the number of samples, for the model and the real-vs-real floor,
    with each FID_inf (the extrapolation to infinitely many samples) as a dashed line: FID
    falls as N grows, so two numbers only compare at the same N, or as FID_inf."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 2.7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(SAMPLE_COUNT_PANELS), squeeze=False)[0]
    for axis, (key, title) in zip(axes, SAMPLE_COUNT_PANELS, strict=True):
        for series, color, marker in SAMPLE_COUNT_SERIES:
            curve = as_mapping(as_mapping(sample_counts).get(series))
            counts, values = _series(curve.get("counts")) or [], _series(curve.get(key)) or []
            values = [scaled(v, display_exponent(key, extractor)) for v in values]
            label = model if series == "model" else FLOOR_LABEL
            if counts and len(values) == len(counts):
                axis.plot(
                    counts,
                    values,
                    marker=marker,
                    markersize=3,
                    linewidth=1.0,
                    color=color,
                    label=label,
                )
            fid_inf = curve.get(FID_INF)
            if key == "fid" and _plottable(fid_inf):
                axis.axhline(
                    fid_inf,
                    color=color,
                    linestyle="--",
                    linewidth=0.8,
                    label=f"{label}: FID_inf {format_number(fid_inf)}",
                )
        axis.set_title(
            f"{scaled_header(title, key, extractor)} against the sample count", fontsize=9
        )
        axis.set_xlabel("samples N", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


@dataclass(frozen=True)
class FirstRun:
    """The run a model's pictures, curves and per-model sections come from: its first seed's
    (layout.run_name of the model and the leaderboard row's ``seed``; the model's name for a
    board written before seeds)."""

    model: str
    name: str
    seed: int | None

    @property
    def evaluate(self) -> str:
        return stage_instance("evaluate", self.model, self.seed)

    @property
    def train(self) -> str:
        return stage_instance("train", self.model, self.seed)


def _run_of(model: str, seed: Any) -> tuple[str, int | None]:
    """A run's folder name and seed, from the model and the seed only (a name read from a file
    could point anywhere under runs/)."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return run_name(model, seed), seed
    return model, None


def first_runs(board: dict[str, Any]) -> dict[str, FirstRun]:
    runs = {}
    for model in board["ranking"]:
        name, seed = _run_of(model, as_mapping(board["models"][model]).get("seed"))
        runs[model] = FirstRun(model, name, seed)
    return runs


def read_model_metrics(metrics_dir: Path, run: FirstRun) -> dict[str, Any] | str:
    """metrics/<run name>.json, or the sentence to show instead when it is missing or broken."""
    model = run.model
    path = metrics_file(metrics_dir, run.name)
    if not path.is_file():
        return f"{model}: no {path} (re-run `dvc repro {run.evaluate}`)"
    try:
        return read_json_object(path, f"re-run `dvc repro -f {run.evaluate}`")
    except StageInputError as error:
        return f"{model}: {error}"


def _sample_counts(
    run: FirstRun, record: dict[str, Any] | str, path: Path, extractor: str | None
) -> str:
    model = run.model
    if isinstance(record, str):
        return note_html(record)
    redo = f"re-run `dvc repro -f {run.evaluate}`"
    curves = record.get("sample_counts")
    if curves is not None and not isinstance(curves, Mapping):
        return note_html(f"{model}: {path}: `sample_counts` is not an object (malformed): {redo}")
    curves = as_mapping(curves)
    bad = malformed_curve_keys(curves)
    malformed = (
        note_html(
            f"{model}: {path}: {', '.join(f'`{k}`' for k in bad)} malformed, left out: {redo}"
        )
        if bad
        else ""
    )
    counts = _series(as_mapping(curves.get("model")).get("counts"))
    if not counts:
        return malformed or note_html(
            f"{model}: {path} has no scores at several sample counts (evaluated before they "
            f"were recorded, or evaluate.sample_counts is empty): {redo}"
        )
    listed = ", ".join(format_number(n, 12) for n in counts)
    picture = Picture(
        png_data_uri(sample_count_png(model, curves, extractor)),
        alt=f"FID and KID of {model} and of the real-vs-real floor against the sample count "
        f"({listed}), with FID_inf",
        caption=f"{model}: from {path}",
    )
    return figure_html(picture, "sample-counts") + malformed


def _text(value: Any) -> str:
    """A recorded fact as table text: a string or number as it is, "n/a" for anything else
    (not recorded, or of the wrong type in someone else's file). The page escapes it."""
    if isinstance(value, str):
        return value or "n/a"
    return format_number(value, 12)


def _versions(versions: Any) -> str:
    listed = sorted(as_mapping(versions).items(), key=lambda item: str(item[0]))
    return ", ".join(f"{k} {_text(v)}" for k, v in listed) or "n/a"


def _sized(part: Any) -> str:
    part = as_mapping(part)
    if part.get("split") is None and part.get("size") is None:
        return "n/a"
    return f"{_text(part.get('split'))}, {_text(part.get('size'))}"


COMPARABILITY_COLUMNS = (
    "model",
    "extractor",
    "weights sha256",
    "input",
    "reference (split, size)",
    "floor (split, size)",
    "samples",
    "bootstrap",
    "versions",
)


def comparability_cells(record: dict[str, Any]) -> dict[str, str]:
    """What decides a model's numbers, as text: two rows that differ here are not comparable."""
    facts = as_mapping(record.get("comparability"))
    sha = facts.get("weights_sha256") or record.get("weights_sha256")
    known = facts.get("weights_known")
    weights = (
        "n/a"
        if not isinstance(sha, str) or not sha
        else sha[:12] + (" (known)" if known is True else " (UNKNOWN)" if known is False else "")
    )
    source = as_mapping(facts.get("input"))
    size = source.get("size")
    boot = as_mapping(facts.get("bootstrap"))
    rounds = boot.get("rounds")
    return {
        "extractor": _text(facts.get("extractor", record.get("extractor"))),
        "weights sha256": weights,
        "input": "n/a"
        if not is_number(size)
        else f"{_text(size)} px, {_text(source.get('filter'))}",
        "reference (split, size)": _sized(facts.get("reference")),
        "floor (split, size)": _sized(facts.get("floor_samples")),
        "samples": _text(facts.get("samples")),
        "bootstrap": (
            f"{_text(rounds)} rounds, {format_number(boot.get('level'))} level"
            if is_number(rounds) and rounds
            else "n/a"
        ),
        "versions": _versions(facts.get("versions")),
    }


def _comparability(records: dict[str, dict[str, Any] | str]) -> str:
    cells = {m: comparability_cells(r) for m, r in records.items() if isinstance(r, dict)}
    if not cells:
        return note_html("no metrics files: nothing to compare the evaluation settings of")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in COMPARABILITY_COLUMNS)
    body = []
    for model, row in cells.items():
        tds = [f"<td>{html.escape(model)}</td>"]
        for column in COMPARABILITY_COLUMNS[1:]:
            differs = len({other[column] for other in cells.values()}) > 1
            css = ' class="differs"' if differs else ""
            tds.append(f"<td{css}>{html.escape(row[column])}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (
        f'<table id="comparability"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _table(board: dict[str, Any]) -> str:
    headers = column_headers(board)
    head = "".join(f"<th>{html.escape(headers[h])}</th>" for h in LEADERBOARD_COLUMNS)
    body = []
    for kind, cells in leaderboard_rows(board):
        tds = "".join(f"<td>{html.escape(cells[c])}</td>" for c in LEADERBOARD_COLUMNS)
        body.append(f'<tr class="{kind}">{tds}</tr>')
    return (
        f'<table id="leaderboard"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        + "".join(f'<p class="ties">{html.escape(note)}</p>' for note in tie_notes(board))
    )


def _seeds_table(board: dict[str, Any]) -> str:
    """Mean ± std over seeds per model, the ranked score of each seed, and the seed-range
    sentence under it."""
    headers = seed_column_headers(board)
    head = "".join(f"<th>{html.escape(headers[c])}</th>" for c in SEED_COLUMNS)
    body = [
        "<tr>" + "".join(f"<td>{html.escape(cells[c])}</td>" for c in SEED_COLUMNS) + "</tr>"
        for cells in seed_rows(board)
    ]
    return (
        f'<table id="seeds"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        + "".join(f'<p class="seed-ties">{html.escape(n)}</p>' for n in seed_notes(board))
    )


def _html_table(
    table_id: str,
    columns: tuple[str, ...],
    headers: dict[str, str],
    rows: list[tuple[dict[str, str], str]],
) -> str:
    """A table (``table_id``: its opening tag) of text cells, each escaped; a row's css class
    beside its cells ("" for none)."""
    head = "".join(f"<th>{html.escape(headers.get(c, c))}</th>" for c in columns)
    body = []
    for cells, css in rows:
        tds = "".join(f"<td>{html.escape(cells[c])}</td>" for c in columns)
        body.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f"{table_id}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _class_comparison(board: dict[str, Any]) -> str:
    """Conditional against unconditional at a glance: a row per class, each model's accuracy
    and intra-class KID side by side (n/a where a model has no figure for the class)."""
    models = list(board["ranking"])
    by_model = {m: {r["class"]: r for r in per_class_rows(board, m)} for m in models}
    classes = list(dict.fromkeys(name for rows in by_model.values() for name in rows))
    if not classes:
        return note_html("no model recorded per-class figures: nothing to compare")
    kid = per_class_headers(board)["intra-class KID"]
    columns = ("class", *(f"{m}: {what}" for m in models for what in ("accuracy", kid)))
    rows = []
    for name in classes:
        cells = {"class": name}
        for model in models:
            row = by_model[model].get(name, {})
            cells[f"{model}: accuracy"] = row.get("accuracy", "n/a")
            cells[f"{model}: {kid}"] = row.get("intra-class KID", "n/a")
        rows.append((cells, ""))
    return _html_table('<table id="per-class-compare">', columns, {}, rows)


def _class_grid(run: FirstRun, metrics_dir: Path | None) -> str:
    """The evaluate stage's class x seed grid of the run (layout.class_grid), embedded; a note
    when there is none (no metrics folder given, an older evaluation, not a PNG)."""
    if metrics_dir is None:
        return ""
    path = class_grid(metrics_dir, run.name)
    picture = picture_from_file(
        path,
        alt=f"class grid machine-generated by {run.model}: a row per class, a column per "
        "latent seed (the same latent in each column)",
        caption=f"{run.model}: a row per class, a column per latent seed (run {run.name})",
    )
    if picture is None:
        return note_html(f"{run.model}: no class grid ({path} missing or not a PNG)")
    return figure_html(picture, "grid classes")


def _per_class(board: dict[str, Any], runs: dict[str, FirstRun], metrics_dir: Path | None) -> str:
    """The per-class section: the summary over models, the side-by-side comparison, then each
    model's per-class table (worst class marked) beside its class grid."""
    headers = per_class_headers(board)
    parts = [
        f"<p>{html.escape(PER_CLASS_SENTENCE)}</p>",
        _html_table(
            '<table id="per-class-summary">',
            CLASS_SUMMARY_COLUMNS,
            headers,
            [(cells, "") for cells in class_summary_rows(board)],
        ),
        "<h3>Per-class accuracy and intra-class KID, side by side</h3>",
        _class_comparison(board),
    ]
    for model in board["ranking"]:
        run = runs[model]
        section, note = board_per_class(board["models"][model])
        rows = per_class_rows(board, model)
        drawn = drawn_note(section)
        table = (
            _html_table(
                f'<table class="per-class" data-model="{html.escape(model)}">',
                PER_CLASS_COLUMNS,
                headers,
                [(cells, "worst" if cells["worst"] else "") for cells in rows],
            )
            if rows
            else note_html(f"{model}: per-class figures {note}")
        )
        if rows and drawn:
            table = note_html(f"{model}: only {drawn}: the others have no intra-class KID") + table
        parts.append(
            f'<div class="model-classes" data-model="{html.escape(model)}">'
            f"<h3>{html.escape(model)} <small>(run {html.escape(run.name)})</small></h3>"
            f'<div class="row">{table}{_class_grid(run, metrics_dir)}</div></div>'
        )
    return "".join(parts)


def wandb_url(runs_dir: Path, run_name: str) -> str | None:
    """The W&B page of a synced run, as its train summary records it (``links.wandb_url``);
    None for an offline run, or when the summary is missing or holds no http(s) URL."""
    path = RunLayout.at(runs_dir / run_name).summary
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return web_link(as_mapping(as_mapping(summary).get("links")).get("wandb_url"))


RUNS_COLUMNS = ("model", "seed", "run", "W&B id")


def _runs_table(board: dict[str, Any], runs_dir: Path) -> str:
    """Every run behind the board (each model's seeds, in rank order): its name, its W&B id
    (the run id) and, once synced, a link to its W&B page; the ranked score of each run."""
    score = str(board.get("rank_by"))
    extractor = board.get("extractor")
    column = scaled_header(score, score, extractor)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (*RUNS_COLUMNS, column))
    body = []
    for model in board["ranking"]:
        for run in as_mapping(board["models"][model].get("over_seeds")).get("runs") or []:
            run = as_mapping(run)
            name, _ = _run_of(model, run.get("seed"))
            run_id = html.escape(str(run.get("run_id") or "n/a"))
            url = wandb_url(runs_dir, name)
            shown = (
                f'<a href="{html.escape(url, True)}" rel="noreferrer">{run_id}</a>'
                if url
                else f'{run_id} <span class="offline">(not synced)</span>'
            )
            value = format_number(scaled(run.get(score), display_exponent(score, extractor)))
            cells = [model, str(run.get("seed", "n/a")), name]
            body.append(
                "<tr>"
                + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                + f'<td class="wandb">{shown}</td><td>{html.escape(value)}</td></tr>'
            )
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def figure_html(picture: Picture, css: str) -> str:
    """A chart or image with its alt text and caption (escaped), for any genlab page."""
    return (
        f'<figure class="{css}"><img src="{picture.data_uri}" alt="{html.escape(picture.alt)}">'
        f"<figcaption>{html.escape(picture.caption)}</figcaption></figure>"
    )


def note_html(text: str) -> str:
    """A one-line note (escaped) where something is missing or left out."""
    return f'<p class="note missing">{html.escape(text)}</p>'


def _model_pictures(run: FirstRun, run_id: str, runs_dir: Path) -> list[str]:
    model = run.model
    samples_dir = RunLayout.at(runs_dir / run.name).samples
    parts = []
    for pattern, what in ((SAMPLES_RE, "samples"), (RECONSTRUCTIONS_RE, "reconstructions")):
        latest = latest_step_file(samples_dir, pattern)
        if latest is None:
            if what == "samples":
                parts.append(note_html(f"{model}: no sample grid (step_*.png) in {samples_dir}"))
            continue
        step, path = latest
        picture = picture_from_file(
            path,
            alt=f"{what} grid machine-generated by {model} (run {run_id}) at training step {step}",
            caption=f"{model}: {what}, step {step} (run {run.name})",
        )
        if picture is None:
            parts.append(note_html(f"{model}: {path} is not a PNG image"))
        else:
            parts.append(figure_html(picture, f"grid {what}"))
    return parts


def _model_curves(run: FirstRun, runs_dir: Path, smoothing: float) -> str:
    model = run.model
    csv_path = RunLayout.at(runs_dir / run.name).metrics_csv
    if not csv_path.is_file():
        return note_html(
            f"{model}: no training curves: {csv_path} not found (train with the CSV logger "
            f"beside W&B, or re-run `dvc repro {run.train}`)"
        )
    curves = read_curves(csv_path)
    if not curves:
        return note_html(f"{model}: {csv_path} holds no logged training metrics")
    picture = Picture(
        png_data_uri(curves_png(model, curves, smoothing)),
        alt=f"training curves of {model}: {', '.join(sorted(curves))} against step, "
        f"smoothed (EMA weight {smoothing:g}) over the raw values drawn faint",
        caption=f"{model}: from {csv_path}; solid: smoothed (EMA weight {smoothing:g}), faint: raw",
    )
    return figure_html(picture, "curves")


def _memorization(run: FirstRun, run_id: str, metrics_dir: Path | None) -> str:
    if metrics_dir is None:
        return ""
    model = run.model
    path = nearest_training_image(metrics_dir, run.name)
    picture = picture_from_file(
        path,
        alt=f"the closest pairs: each sample of {model} (run {run_id}), then its nearest "
        "training image",
        caption=f"{model}: closest pairs, each generated sample then its nearest real training "
        "image",
    )
    return figure_html(picture, "nearest") if picture else note_html(f"{model}: no {path}")


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.3rem .6rem;text-align:right}
td:nth-child(2),th:nth-child(2),td:nth-child(3){text-align:left}
tr.floor{font-style:italic;background:#f3f3f3}
.offline{color:#777;font-size:.8rem}
.row{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure{margin:0}
figure.grid img,figure.nearest img{width:274px;image-rendering:pixelated;border:1px solid #ccc}
figure.grid.classes img{width:auto;max-width:100%;height:auto}
tr.worst{background:#ffe0e0;font-weight:600}
figure.curves img,figure.sample-counts img{max-width:100%}
p.ties{max-width:60rem}
td.differs{background:#ffe0e0}
figcaption{font-size:.85rem;color:#555;max-width:274px}
figure.curves figcaption,figure.sample-counts figcaption{max-width:none}
.note{color:#a33}
.provenance{background:#fff6d6;padding:.5rem .8rem;border-left:4px solid #e0b000}
"""


def runs_page_note() -> str:
    """A pointer to the page of every run (sweep jobs, Optuna trials, DVC experiments). That
    page is built by `genlab runs --html`, never by this stage, which must not read the sweep
    folders (``.dvcignore``d, no stage's dependency: a cached page would hide their changes).
    Named, not linked: this page references nothing outside itself."""
    return (
        '<p id="runs-page-note">This page compares the <code>dvc repro</code> runs. Every run '
        "of the workspace (sweep jobs, Optuna trials, DVC experiments), with a chart of each "
        "sweep's hyperparameters against its objective, is on another page: run "
        "<code>genlab runs --html</code> in the workspace, then open "
        f"<code>{html.escape(RUNS_PAGE)}</code> (not a DVC output: rebuilt on request).</p>"
    )


def render_html(
    board: dict[str, Any],
    runs_dir: Path,
    metrics_dir: Path | None,
    title: str,
    sources: str,
    smoothing: float = DEFAULT_SMOOTHING,
) -> str:
    """The page as a string: no I/O besides reading the run files."""
    models = list(board["ranking"])
    runs = first_runs(board)
    run_ids = {m: str(board["models"][m].get("run_id", "n/a")) for m in models}
    provenance = ", ".join(f"{m} = {r}" for m, r in run_ids.items())
    samples, curves, nearest = [], [], []
    for model in models:
        pictures = "".join(_model_pictures(runs[model], run_ids[model], runs_dir))
        samples.append(
            f'<div class="model" data-model="{html.escape(model)}">'
            f"<h3>{html.escape(model)} <small>(run {html.escape(runs[model].name)})</small></h3>"
            f'<div class="row">{pictures}</div>'
            "</div>"
        )
        curves.append(_model_curves(runs[model], runs_dir, smoothing))
        nearest.append(_memorization(runs[model], run_ids[model], metrics_dir))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1>",
        '<p class="provenance">The sample grids and reconstructions on this page are '
        f"machine-generated by genlab (run ids: {html.escape(provenance)}); the memorization "
        "pictures pair generated samples with the real training images nearest to them.</p>",
        runs_page_note(),
        "</header>",
        '<section id="leaderboard-section"><h2>Leaderboard</h2>',
        f"<p>Feature extractor: <code>{html.escape(str(board.get('extractor')))}</code>; ranked "
        f"by <code>{html.escape(str(board.get('rank_by')))}</code>. "
        f"{html.escape(single_run_sentence(board))} "
        f"{html.escape(better_sentence())} Brackets: the bootstrap confidence interval; "
        "<em>=</em> in the rank: not distinguishable from the model ranked there. "
        "<em>FID_inf</em>: FID extrapolated to infinitely many samples. <em>Floor</em>: real "
        "vs real (train vs test split), what a perfect generator would score. "
        "<em>Untrained</em>: the same network before training. <em>Too close</em>: share of "
        "samples nearer to a training image than the closest few percent of real test images "
        "are.</p>",
        _table(board),
        "</section>",
        '<section id="seeds-section"><h2>Over seeds</h2>',
        f"<p>{html.escape(SEEDS_SENTENCE)}</p>",
        _seeds_table(board),
        "<p>Every run: its W&amp;B id (the run id), a link once the run is synced to W&amp;B "
        "(an offline run: <code>wandb sync</code> its folder).</p>",
        _runs_table(board, runs_dir),
        "</section>",
        '<section id="per-class"><h2>Per class (each model\'s first seed)</h2>',
        _per_class(board, runs, metrics_dir),
        "</section>",
        '<section id="samples"><h2>Latest sample grids (each model\'s first seed)</h2>',
        '<div class="row">',
        *samples,
        "</div></section>",
        '<section id="curves"><h2>Training curves (each model\'s first seed)</h2>',
        f"<p>Solid: smoothed, an exponential moving average with weight {smoothing:g} "
        "(TensorBoard's smoothing, start-up bias removed); faint behind it: the raw logged "
        "values.</p>",
        *curves,
        "</section>",
    ]
    if metrics_dir is not None:
        records = {m: read_model_metrics(metrics_dir, runs[m]) for m in models}
        extractor = board.get("extractor")
        parts += [
            '<section id="sample-counts"><h2>Scores against the sample count</h2>',
            "<p>FID and KID fall as the number of samples grows, so two numbers compare only at "
            "the same count; FID_inf (dashed) is the straight-line fit in 1/N extrapolated to "
            "infinitely many samples.</p>",
            *(
                _sample_counts(
                    runs[m], records[m], metrics_file(metrics_dir, runs[m].name), extractor
                )
                for m in models
            ),
            "</section>",
            '<section id="comparability-section"><h2>What decides the numbers</h2>',
            "<p>Scores compare only when these match (a differing cell is shaded).</p>",
            _comparability(records),
            "</section>",
        ]
        parts += [
            '<section id="memorization"><h2>Memorization check: nearest training images</h2>',
            '<div class="row">',
            *nearest,
            "</div></section>",
        ]
    parts += [f"<footer><p>Built from {html.escape(sources)}.</p></footer>", "</body></html>"]
    return "\n".join(parts) + "\n"


def build_report(
    leaderboard_json: Path,
    runs_dir: Path,
    out_html: Path,
    *,
    metrics_dir: Path | None = None,
    title: str = "genlab: model comparison",
    smoothing: float = DEFAULT_SMOOTHING,
) -> Path:
    """Write the comparison page to ``out_html`` (atomically) and return its path.

    ``leaderboard_json`` is the compare stage's output; ``runs_dir`` holds ``<run>/samples``
    and ``<run>/csv/metrics.csv``; ``metrics_dir`` the evaluate stage's ``<run>.json``
    and ``<run>_nearest_training.png`` (None leaves the sample-count, comparability and
    memorization sections out), ``<run>`` being each model's first seed's run name.
    ``smoothing``: the training curves' EMA weight (curves.smooth). A model's missing or older files
    become a note on the page; a missing leaderboard raises FileNotFoundError.
    """
    leaderboard_json, runs_dir = Path(leaderboard_json), Path(runs_dir)
    board = json.loads(leaderboard_json.read_text())
    sources = _sources(leaderboard_json, runs_dir, metrics_dir)
    page = render_html(
        board, runs_dir, metrics_dir and Path(metrics_dir), title, sources, smoothing
    )
    write_text(out_html, page)
    return Path(out_html)


def _sources(leaderboard_json: Path, runs_dir: Path, metrics_dir: Path | None) -> str:
    files: Iterable[str] = (
        str(leaderboard_json),
        f"{runs_dir}/<run>/csv/metrics.csv",
        f"{runs_dir}/<run>/samples/",
        f"{runs_dir}/<run>/train_summary.json",
    )
    if metrics_dir is not None:
        files = (
            *files,
            f"{metrics_dir}/<run>.json",
            f"{metrics_dir}/<run>_nearest_training.png",
            f"{metrics_dir}/{CLASS_GRID.format(run='<run>')}",
        )
    return ", ".join(files) + " (the files DVC tracks as metrics, plots and outputs)"
