"""The page of every run in a workspace (`genlab runs --html`): one table, a chart per sweep.

It shows what :func:`genlab.reporting.runs.collect_runs` found -- ``dvc repro`` runs, DVC
experiments, multirun jobs and Optuna trials -- with each row's status (a failed run says why, an
interrupted one how to resume it), scores, objective, speed and W&B run, the best run of each
sweep marked; and for each sweep with swept hyperparameters and an objective, a chart of each
hyperparameter against the objective. Like the DVC report page (``leaderboard/report.html``) it is
one self-contained file that any browser opens offline: the charts are matplotlib PNGs embedded as
data URIs, no script, no external reference.

It is not a DVC stage output: it reads sweep folders (``multirun/``, ``.dvcignore``d) and the
state of running jobs, which no stage declares, so it is rebuilt on request instead.

Every string on it comes from files others may have written (names, overrides, reasons, params):
all of it is escaped, in the HTML and in the chart labels alike.
"""

from __future__ import annotations

import html
import io
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab.checks import finite_number, printable
from genlab.errors import OutputPathError
from genlab.io import write_text
from genlab.layout import RUNS_PAGE
from genlab.metric_keys import HIGHER_IS_BETTER
from genlab.reporting.leaderboard import format_number
from genlab.reporting.report import STYLE, Picture, figure_html, note_html, png_data_uri
from genlab.reporting.runs import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    ORIGIN_EXPERIMENT,
    ORIGIN_REPRO,
    RUNNING,
    TABLE_SCORES,
    RunRow,
)
from genlab.urls import web_link

DEFAULT_TITLE = "genlab: every run in this workspace"
# the score columns: FID / KID / IS, headed as on the leaderboard (the terminal table's own)
SCORES = TABLE_SCORES
#: in the page's head: what marks a file as a runs page, the only file write_runs_page replaces
GENERATOR_META = '<meta name="generator" content="genlab runs">'
RUNS_COLUMNS = (
    "origin",
    "name",
    "status",
    "model",
    "overrides",
    *(header for _, header in SCORES),
    "objective",
    "steps",
    "images/s",
    "W&B run",
    "folder",
)
LOG_AXIS_DECADES = 1.5  # a numeric hyperparameter spanning more than this is drawn on a log axis
LABEL_LIMIT = 40  # characters of a hostile string shown in a chart
BEST_MARK = "\u2605"  # the star beside the best run of a sweep

PAGE_STYLE = (
    STYLE
    + """
td:nth-child(4),td:nth-child(5),td:nth-child(13),td:nth-child(14){text-align:left}
body{max-width:none}
td.overrides{min-width:16rem}
td.overrides code{display:block;font-size:.8rem;overflow-wrap:anywhere}
td.folder code{font-size:.8rem;overflow-wrap:anywhere}
tr.failed td.status{color:#a33}
tr.interrupted td.status,tr.running td.status{color:#8a5a00}
tr.best{background:#fff6d6;font-weight:600}
span.best-marker{color:#c08a00;margin-right:.3rem}
span.reason{display:block;font-weight:400;font-size:.8rem;max-width:28rem;text-align:left}
figure.sweep-chart img{max-width:100%}
figure.sweep-chart figcaption{max-width:none}
ul.unscored{font-size:.85rem;color:#555}
"""
)


def runs_page_html(rows: list[RunRow], title: str = DEFAULT_TITLE) -> str:
    """The page as a string: no I/O. ``rows`` in the order the table shows them."""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8">{GENERATOR_META}',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1>",
        "<p>Every run genlab found in this workspace: <code>dvc repro</code> runs, DVC "
        "experiments, multirun jobs and Optuna trials. Rebuilt on request with "
        f"<code>genlab runs --html</code> (default <code>{html.escape(RUNS_PAGE)}</code>); not a "
        "DVC stage output, since it reads sweep folders and running jobs that no stage "
        "declares.</p></header>",
    ]
    if not rows:
        parts += [_no_runs(), "</body></html>"]
        return "\n".join(parts) + "\n"
    sweeps = _by_sweep(rows)
    parts += [
        '<section id="runs-section"><h2>Runs</h2>',
        f"<p>{len(rows)} run(s); {BEST_MARK} marks the best finished run of each sweep by its "
        "objective. Scores of a sweep job are its quick objective only; the "
        "evaluate stage's full figures are those of <code>dvc repro</code> runs.</p>",
        _table(rows, sweeps),
        "</section>",
    ]
    charts = [_sweep_section(sweep, jobs) for sweep, jobs in sweeps.items()]
    parts += [
        '<section id="sweeps"><h2>Sweeps: hyperparameters against the objective</h2>',
        *(charts or [note_html("no sweep in this workspace: nothing to chart")]),
        "</section>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_runs_page(rows: list[RunRow], path: Path) -> Path:
    """Write the page to ``path`` atomically (a browser never sees half a page). Only a new
    file or an earlier runs page (one carrying GENERATOR_META) is written: any other file --
    a README, the DVC report page -- is refused with OutputPathError, left as it was."""
    path = Path(path)
    _refuse_foreign(path)
    write_text(path, runs_page_html(rows))
    return path


_MARKER_WINDOW = 4096  # the marker is in the page's first line or two: read no further


def _refuse_foreign(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    why = None
    if not path.is_file():
        why = "it is not a file"
    else:
        try:
            with open(path, "rb") as handle:
                head = handle.read(_MARKER_WINDOW)
        except OSError as error:
            why = f"it cannot be read ({error.strerror or error})"
        else:
            if GENERATOR_META.encode() not in head:
                why = "it is not a page `genlab runs --html` wrote"
    if why:
        shown = printable(str(path), 300)
        raise OutputPathError(
            f"refusing to overwrite {shown}: {why}. Give --html a new path (default "
            f"{RUNS_PAGE}), or move that file away first."
        )


def _no_runs() -> str:
    return (
        '<p id="no-runs" class="note">No runs in this workspace yet. Make some: '
        "<code>dvc repro</code> (the pipeline: one run per model), "
        "<code>python pipelines/train.py -m model.optim.lr=1e-4,3e-4,1e-3</code> (a sweep), or "
        "<code>python pipelines/train.py -m search=optuna</code> (a search); then run "
        "<code>genlab runs --html</code> again.</p>"
    )


def _by_sweep(rows: list[RunRow]) -> dict[str, list[RunRow]]:
    sweeps: dict[str, list[RunRow]] = {}
    for row in rows:
        if row.sweep is not None:
            sweeps.setdefault(row.sweep, []).append(row)
    return sweeps


# -- the table ---------------------------------------------------------------------------------


def _text(value: Any, digits: int = 4) -> str:
    """A cell's text from a row value: a string as it is, a number formatted, "n/a" otherwise."""
    if isinstance(value, str):
        return value or "n/a"
    return format_number(finite_number(value), digits)  # NaN, a 400-digit integer: n/a


def _table(rows: list[RunRow], sweeps: dict[str, list[RunRow]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in RUNS_COLUMNS)
    body = [_row(row, sweeps) for row in rows]
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _row(row: RunRow, sweeps: dict[str, list[RunRow]]) -> str:
    css = ["run", _css_word(row.status)]
    name = html.escape(row.name)
    if row.best:
        css.append("best")
        metric = row.objective_metric or "the objective"
        name = (
            f'<span class="best-marker" title="{html.escape(_best_title(row, metric), True)}">'
            f"{BEST_MARK}</span>{name}"
        )
    cells = [
        f'<td class="origin">{html.escape(row.origin)}</td>',
        f'<td class="name">{name}</td>',
        f'<td class="status">{_status(row)}</td>',
        f'<td class="model">{html.escape(_text(row.model))}</td>',
        f'<td class="overrides">{_overrides(row.overrides)}</td>',
        *(
            f'<td class="score" data-key="{key}">{html.escape(_text(row.scores.get(key)))}</td>'
            for key, _ in SCORES
        ),
        f'<td class="objective">{_objective(row)}</td>',
        f'<td class="steps">{html.escape(_text(row.steps, 12))}</td>',
        f'<td class="speed">{html.escape(_text(row.images_per_s, 3))}</td>',
        f'<td class="wandb">{_wandb(row)}</td>',
        f'<td class="folder"><code>{html.escape(_text(row.folder))}</code></td>',
    ]
    attributes = f' class="{" ".join(css)}"'
    if row.sweep is not None:
        attributes += f' data-sweep="{html.escape(row.sweep, True)}"'
    if isinstance(row.job, int) and not isinstance(row.job, bool):
        attributes += f' data-job="{row.job}"'
    return f"<tr{attributes}>{''.join(cells)}</tr>"


def _css_word(status: str) -> str:
    """The status as a class name: one of the known statuses, else "unknown" (a hostile row
    cannot inject attributes or classes)."""
    return status if status in (FINISHED, FAILED, RUNNING, INTERRUPTED) else "unknown"


def _best_title(row: RunRow, metric: str) -> str:
    value = _text(row.objective)
    best = "highest" if metric in HIGHER_IS_BETTER else "lowest"
    return f"the best run of sweep {row.sweep or 'n/a'}: {best} {metric} ({value})"


def _better(metric: str) -> str:
    return "higher is better" if metric in HIGHER_IS_BETTER else "lower is better"


def _status(row: RunRow) -> str:
    text = html.escape(row.status)
    details = []
    if row.reason:
        details.append(row.reason)
    if row.status == INTERRUPTED and "resume" not in (row.reason or ""):
        details.append(resume_hint(row))
    elif row.status == FAILED and not row.reason:
        details.append("no reason recorded")
    return text + "".join(f'<span class="reason">{html.escape(d)}</span>' for d in details)


def resume_hint(row: RunRow) -> str:
    """How to continue an interrupted run: the same command again, which resumes it from its
    last checkpoint (a sweep keeps its finished jobs)."""
    if row.sweep is not None:
        return (
            f"to resume: run the same sweep command again with hydra.sweep.dir={row.sweep}; "
            "finished jobs are kept, this one continues from its last checkpoint"
        )
    if row.origin == ORIGIN_REPRO:
        return "to resume: run `dvc repro` again; training continues from its last checkpoint"
    if row.origin == ORIGIN_EXPERIMENT:
        return (
            "to resume: run the same `dvc exp run` again; training continues from its last "
            "checkpoint"
        )
    return "to resume: run the same command again; training continues from its last checkpoint"


def _overrides(overrides: Sequence[str]) -> str:
    if not overrides:
        return "defaults"
    return " ".join(f"<code>{html.escape(str(o))}</code>" for o in overrides)


def _objective(row: RunRow) -> str:
    if row.objective is None and row.objective_metric is None:
        return "n/a"
    metric = html.escape(_text(row.objective_metric))
    return f"{metric} {html.escape(_text(row.objective))}"


def _wandb(row: RunRow) -> str:
    run_id = html.escape(_text(row.run_id))
    url = web_link(row.wandb_url)
    if url is not None:
        return f'<a href="{html.escape(url, True)}" rel="noreferrer">{run_id}</a>'
    if row.wandb_dir:  # an offline run: its folder, to `wandb sync`
        return f'{run_id} <span class="reason">offline: {html.escape(row.wandb_dir)}</span>'
    return run_id


# -- a sweep's chart ---------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return finite_number(value) is not None  # NaN, inf, a 400-digit integer: not


def _label(value: Any) -> str:
    """A hostile string made plain for matplotlib: printable, short, no mathtext ($)."""
    text = value if isinstance(value, str) else repr(value)
    return printable(text, LABEL_LIMIT).replace("$", r"\$")


def swept_params(jobs: list[RunRow]) -> list[str]:
    """The hyperparameters a sweep varies, in first-seen order."""
    return list(dict.fromkeys(key for row in jobs for key in row.params if isinstance(key, str)))


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(_finite(v) for v in present)


def _log_axis(values: list[float]) -> bool:
    return min(values) > 0 and math.log10(max(values) / min(values)) > LOG_AXIS_DECADES


def _sweep_section(sweep: str, jobs: list[RunRow]) -> str:
    params = swept_params(jobs)
    metrics = Counter(r.objective_metric for r in jobs if r.objective_metric)
    metric = metrics.most_common(1)[0][0] if metrics else None
    scored = [r for r in jobs if r.objective_metric == metric and _finite(r.objective)]
    unscored = [r for r in jobs if r not in scored]
    head = (
        f'<div class="sweep" data-sweep="{html.escape(sweep, True)}"><h3>{html.escape(sweep)}</h3>'
    )
    if not params:
        body = note_html(f"{sweep}: no swept hyperparameters recorded: nothing to chart")
    elif metric is None or not scored:
        body = note_html(
            f"{sweep}: no job has an objective value (a search sets train.objective.metric, "
            "e.g. search=optuna): nothing to chart"
        )
    else:
        best = next((r for r in scored if r.best), None)
        png = sweep_png(sweep, metric, params, scored, unscored)
        listed = ", ".join(params)
        best_text = f"; best: {best.name} ({metric} {_text(best.objective)})" if best else ""
        picture = Picture(
            png_data_uri(png),
            alt=f"{metric} of the {len(scored)} scored jobs of sweep {sweep} against {listed}"
            f"{best_text}; failed or unscored jobs: {len(unscored)}",
            caption=f"{sweep}: {metric} ({_better(metric)}) against each swept hyperparameter; "
            f"{BEST_MARK} the best run, x on the axis: failed jobs",
        )
        body = figure_html(picture, "sweep-chart")
    return head + body + _unscored_list(unscored, params) + "</div>"


def _unscored_list(unscored: list[RunRow], params: list[str]) -> str:
    if not unscored:
        return ""
    items = []
    for row in unscored:
        values = ", ".join(f"{k}={_text(row.params.get(k), 6)}" for k in params if k in row.params)
        why = f": {row.reason}" if row.reason else ""
        items.append(
            f'<li class="{_css_word(row.status)}">{html.escape(row.name)} ({html.escape(values)})'
            f" {html.escape(row.status)}{html.escape(why)}</li>"
        )
    return (
        f'<p>Not on the chart (no objective value):</p><ul class="unscored">{"".join(items)}</ul>'
    )


def sweep_png(
    sweep: str, metric: str, params: list[str], scored: list[RunRow], unscored: list[RunRow]
) -> bytes:
    """One panel per swept hyperparameter, the objective on y: finished jobs as points, the
    best one as a labelled star, failed jobs as crosses on the x axis. A numeric hyperparameter
    spanning more than LOG_AXIS_DECADES decades gets a log axis; any other (a model, a loss)
    a strip plot by category."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(3, len(params))
    rows = math.ceil(len(params) / columns)
    figure = Figure(figsize=(3.6 * columns, 2.9 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    failed = [r for r in unscored if r.status == FAILED]
    for index, axis in enumerate(axes.flat):
        if index >= len(params):
            axis.set_visible(False)
            continue
        _panel(axis, params[index], scored, failed)
        axis.set_ylabel(f"{_label(metric)} ({_better(metric)})", fontsize=8)
    figure.suptitle(_label(sweep), fontsize=10)
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _panel(axis: Any, param: str, scored: list[RunRow], failed: list[RunRow]) -> None:
    values = [r.params.get(param) for r in (*scored, *failed)]
    numeric = _numeric(values)
    if numeric:
        present = [float(v) for r in scored if (v := r.params.get(param)) is not None]
        if present and _log_axis(present):
            axis.set_xscale("log")

        def position(value: Any) -> float | None:
            return None if value is None else float(value)
    else:
        categories = list(dict.fromkeys(_label(v) for v in values if v is not None))
        slots = {c: i for i, c in enumerate(categories)}
        axis.set_xticks(range(len(categories)), categories, rotation=20, fontsize=7)
        axis.set_xlim(-0.6, len(categories) - 0.4)
        seen: Counter[str] = Counter()

        def position(value: Any) -> float | None:
            if value is None:
                return None
            label = _label(value)
            seen[label] += 1  # a small deterministic spread so equal points stay apart
            return slots[label] + 0.08 * ((seen[label] % 5) - 2)

    points = [(position(r.params.get(param)), r) for r in scored]
    plain = [(x, r.objective) for x, r in points if x is not None and not r.best]
    if plain:
        axis.scatter(*zip(*plain, strict=True), s=22, color="#1f77b4", label="finished", zorder=3)
    placed = [x for x, _ in points if x is not None]
    for x, row in points:
        if x is None or not row.best:
            continue
        axis.scatter([x], [row.objective], s=140, marker="*", color="#e0a000", zorder=4)
        right = x >= sorted(placed)[len(placed) // 2]  # label inwards, never off the panel
        axis.annotate(
            f"best: {_label(row.name)}",
            (x, row.objective),
            xytext=(-8 if right else 8, 6),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=7,
        )
    # failed jobs: crosses on the x axis, within the finished jobs' range (a diverging value
    # such as lr=1e30 would squash the chart: those are listed below it only)
    limits = axis.get_xlim()
    crosses = [x for x in (position(r.params.get(param)) for r in failed) if x is not None]
    crosses = [x for x in crosses if min(limits) <= x <= max(limits)]
    if crosses:
        axis.scatter(
            crosses,
            [0.03] * len(crosses),
            marker="x",
            color="#c03030",
            transform=axis.get_xaxis_transform(),  # y in axes units: on the x axis
            zorder=4,
            label="failed",
        )
        axis.set_xlim(limits)
    axis.set_xlabel(_label(param), fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    if not numeric:
        axis.xaxis.grid(False)
