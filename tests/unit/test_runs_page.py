"""The page of every run, from rows built here: the table, the best run of each sweep marked,
hostile strings escaped, a chart per sweep that has swept hyperparameters and an objective,
failed rows' reasons, the empty page; and nothing loaded from anywhere."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from PIL import Image

from genlab.errors import OutputPathError
from genlab.layout import RUNS_DIR, RUNS_PAGE, run_name
from genlab.reporting.runs import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    ORIGIN_MULTIRUN,
    ORIGIN_OPTUNA,
    ORIGIN_REPRO,
    RunRow,
)
from genlab.reporting.runs_page import (
    GENERATOR_META,
    RUNS_COLUMNS,
    runs_page_html,
    write_runs_page,
)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>$\\frac{'
LEARNING_RATES = (1e-4, 1e-3, 1e-2)  # two decades: a log axis
KIDS = (0.31, 0.12, 0.27)


def sweep_job(sweep: str, job: int, lr: float, kid: float | None, **fields) -> RunRow:
    return RunRow(
        origin=ORIGIN_OPTUNA,
        name=f"{sweep}#{job}",
        status=FINISHED if kid is not None else FAILED,
        model="dcgan",
        overrides=(f"model.optim.lr={lr}",),
        scores={} if kid is None else {"kid_mean": kid},
        objective_metric="kid_mean",
        objective=kid,
        steps=20,
        images_per_s=812.5,
        run_id=f"run{job}",
        folder=f"multirun/{sweep}/{job}/run",
        sweep=f"multirun/{sweep}",
        job=job,
        params={"model.optim.lr": lr},
        **fields,
    )


VAE_RUN = run_name("vae", 0)  # a `dvc repro` run: one model, one seed
VAE_FOLDER = f"{RUNS_DIR}/{VAE_RUN}"


def rows() -> list[RunRow]:
    jobs = [
        sweep_job("lr", job, lr, kid, best=kid == min(KIDS))
        for job, (lr, kid) in enumerate(zip(LEARNING_RATES, KIDS, strict=True))
    ]
    failed = sweep_job("lr", 3, 1e30, None, reason="training diverged: loss became nan")
    repro = RunRow(
        origin=ORIGIN_REPRO,
        name=VAE_RUN,
        status=FINISHED,
        model="vae",
        scores={"kid_mean": 0.05, "fid": 60.5, "isc_mean": 4.25},
        steps=3000,
        images_per_s=1500.0,
        run_id="bbbb2222",
        wandb_url="https://wandb.ai/me/genlab/runs/bbbb2222",
        folder=VAE_FOLDER,
    )
    # a plain multirun without an objective: no chart
    plain = [
        RunRow(
            origin=ORIGIN_MULTIRUN,
            name=f"seeds#{job}",
            status=FINISHED,
            model="dcgan",
            overrides=(f"seed={job}",),
            sweep="multirun/seeds",
            job=job,
            params={"seed": job},
        )
        for job in range(2)
    ]
    return [repro, *jobs, failed, *plain]


class Page(HTMLParser):
    """Tables' rows as (class, [cell text]), images, figures and every src / href."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.images: list[dict[str, str]] = []
        self.figures: list[str] = []
        self.references: list[str] = []
        self.scripts = 0
        self.attributes: set[str] = set()
        self._cell: list[str] | None = None
        self._in_runs = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.attributes.update(attributes)
        self.references += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self._in_runs = attributes.get("id") == "runs"
        if tag == "tr" and self._in_runs and "run" in (attributes.get("class") or "").split():
            self.rows.append((attributes.get("class") or "", []))
        if tag == "td" and self._in_runs and self.rows:
            self._cell = []
        if tag == "img":
            self.images.append(attributes)
        if tag == "figure":
            self.figures.append(attributes.get("class") or "")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._in_runs = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def page() -> tuple[str, Page]:
    text = runs_page_html(rows())
    return text, parse(text)


def cell(cells: list[str], column: str) -> str:
    return cells[RUNS_COLUMNS.index(column)]


def test_the_table_has_a_row_per_run_with_its_facts(page):
    _, parsed = page
    assert len(parsed.rows) == len(rows())
    by_name = {cell(c, "name").lstrip("\u2605"): (css, c) for css, c in parsed.rows}
    _, vae = by_name[VAE_RUN]
    assert cell(vae, "origin") == ORIGIN_REPRO and cell(vae, "status") == FINISHED
    assert (cell(vae, "KID"), cell(vae, "FID"), cell(vae, "IS")) == ("0.05", "60.5", "4.25")
    assert cell(vae, "steps") == "3000" and cell(vae, "folder") == VAE_FOLDER
    assert cell(vae, "overrides") == "defaults"
    _, job = by_name["lr#0"]
    assert cell(job, "objective") == "kid_mean 0.31"
    assert cell(job, "overrides") == "model.optim.lr=0.0001"
    assert cell(job, "W&B run") == "run0" and cell(job, "images/s") == "812"
    text, _ = page
    link = re.search(r'<a href="([^"]*)"[^>]*>bbbb2222</a>', text)
    assert link and link.group(1) == "https://wandb.ai/me/genlab/runs/bbbb2222"


def test_the_best_run_of_each_sweep_is_marked_once(page):
    text, parsed = page
    best = [(css, c) for css, c in parsed.rows if "best" in css.split()]
    assert len(best) == 1
    css, cells = best[0]
    assert cell(cells, "name") == "\u2605lr#1" and cell(cells, "objective") == "kid_mean 0.12"
    marker = re.search(r'<span class="best-marker" title="([^"]*)">', text)
    assert marker and "lowest kid_mean" in marker.group(1) and "multirun/lr" in marker.group(1)
    others = [c for css, c in parsed.rows if "best" not in css.split()]
    assert all("\u2605" not in cell(c, "name") for c in others)


def test_failed_and_interrupted_rows_say_why_and_how_to_resume():
    interrupted = RunRow(
        origin=ORIGIN_MULTIRUN,
        name="lr#4",
        status=INTERRUPTED,
        reason="process 4242 is gone",
        sweep="multirun/lr",
        job=4,
    )
    parsed = parse(runs_page_html([*rows(), interrupted]))
    statuses = {cell(c, "name"): (css, cell(c, "status")) for css, c in parsed.rows}
    css, failed = statuses["lr#3"]
    assert "failed" in css.split()
    assert failed.startswith(FAILED) and "training diverged: loss became nan" in failed
    css, stopped = statuses["lr#4"]
    assert "interrupted" in css.split() and "process 4242 is gone" in stopped
    assert "hydra.sweep.dir=multirun/lr" in stopped and "resume" in stopped


def test_hostile_strings_are_escaped_everywhere():
    hostile = RunRow(
        origin=HOSTILE,
        name=HOSTILE,
        status=HOSTILE,
        model=HOSTILE,
        reason=HOSTILE,
        overrides=(f"model.name={HOSTILE}",),
        objective_metric=HOSTILE,
        objective=0.5,
        run_id=HOSTILE,
        wandb_url=f"javascript:alert(1)//{HOSTILE}",
        folder=HOSTILE,
        sweep=f'multirun/"{HOSTILE}',
        job=0,
        params={HOSTILE: HOSTILE, "model.optim.lr": 1e-3},
        best=True,
    )
    failed = RunRow(
        origin=ORIGIN_MULTIRUN,
        name="x#1",
        status=FAILED,
        reason=HOSTILE,
        sweep=hostile.sweep,
        job=1,
        params={HOSTILE: "y"},
    )
    text = runs_page_html([hostile, failed])
    parsed = parse(text)
    assert parsed.scripts == 0 and "<script" not in text and "<img src=x" not in text
    assert not [name for name in parsed.attributes if name.startswith("on")], "no handlers"
    assert len(parsed.images) == 1, "the chart only: no image made from a hostile string"
    assert "javascript:" not in text, "a non-http W&B url is not made a link"
    assert all(r.startswith("data:image/png;base64,") for r in parsed.references)
    assert parsed.rows[0][0].split() == ["run", "unknown", "best"], "no class from a file"
    assert text.count("&lt;script&gt;") >= 8, "shown as text, not dropped"
    assert parsed.figures == ["sweep-chart"], "the chart draws hostile labels as plain text"


def test_a_chart_per_sweep_with_swept_params_and_an_objective(page):
    text, parsed = page
    assert parsed.figures == ["sweep-chart"], "the lr search only: the seeds sweep has no score"
    (chart,) = parsed.images
    assert chart["src"].startswith("data:image/png;base64,")
    assert "model.optim.lr" in chart["alt"] and "multirun/lr" in chart["alt"]
    assert "best: lr#1 (kid_mean 0.12)" in chart["alt"]
    image = Image.open(io.BytesIO(base64.b64decode(chart["src"].split(",", 1)[1])))
    assert image.format == "PNG" and image.width > 300 and image.height > 200
    seeds = text.split('data-sweep="multirun/seeds"><h3>', 1)[1].split("</div>", 1)[0]
    assert "no job has an objective value" in seeds
    unscored = text.split('data-sweep="multirun/lr"><h3>', 1)[1].split("</div>", 1)[0]
    assert "lr#3" in unscored and "loss became nan" in unscored, "failed jobs listed"


def test_a_sweep_without_params_gets_no_chart_and_categories_get_a_strip_plot():
    scored = [
        RunRow(
            origin=ORIGIN_MULTIRUN,
            name=f"s#{job}",
            status=FINISHED,
            objective_metric="fid",
            objective=float(10 + job),
            sweep="multirun/s",
            job=job,
        )
        for job in range(3)
    ]
    text = runs_page_html(scored)
    assert "<figure" not in text and "no swept hyperparameters recorded" in text
    losses = [
        replace(row, params={"loss": name}, best=row.job == 0)
        for row, name in zip(scored, ("hinge", "non_saturating", "hinge"), strict=True)
    ]
    parsed = parse(runs_page_html(losses))
    assert parsed.figures == ["sweep-chart"]
    assert "against loss" in parsed.images[0]["alt"]


def test_an_empty_workspace_says_how_to_make_runs(tmp_path):
    path = write_runs_page([], tmp_path / "reports" / "runs.html")
    text = path.read_text()
    assert 'id="no-runs"' in text and "dvc repro" in text and "-m search=optuna" in text
    assert "<table" not in text and "<img" not in text


def test_write_runs_page_writes_the_page_atomically(tmp_path):
    path = write_runs_page(rows(), tmp_path / RUNS_PAGE)
    assert path == tmp_path / RUNS_PAGE
    assert path.read_text() == runs_page_html(rows())
    assert [p.name for p in path.parent.iterdir()] == ["runs.html"], "no temporary file left"


def test_numbers_no_float_holds_are_shown_as_na():
    """A row's number may come from a file: an integer too large for a float (float() and
    math.isfinite() raise on it) or NaN is "n/a", on the table and on the chart's axis."""
    huge = 10**400
    odd = [
        sweep_job("big", 0, huge, 0.2),
        sweep_job("big", 1, 1e-3, 0.1, best=True),
        sweep_job("big", 2, 1e-2, float("nan")),
        RunRow(ORIGIN_REPRO, "dcgan", FINISHED, scores={"fid": huge, "kid_mean": 0.02}),
    ]
    odd[0] = replace(odd[0], objective=huge, steps=huge, images_per_s=huge)
    parsed = parse(runs_page_html(odd))
    cells = {cells[1].split("#")[-1]: cells for _, cells in parsed.rows}
    column = {name: RUNS_COLUMNS.index(name) for name in RUNS_COLUMNS}
    big = cells["0"]
    assert [big[column[c]] for c in ("objective", "steps", "images/s")] == [
        "kid_mean n/a",
        "n/a",
        "n/a",
    ]
    assert cells["2"][column["objective"]] == "kid_mean n/a"
    assert [cells["dcgan"][column[c]] for c in ("FID", "KID")] == ["n/a", "0.02"]
    assert parsed.figures == ["sweep-chart"], "the finite jobs are still charted"


def test_write_runs_page_replaces_only_a_runs_page(tmp_path):
    """Never overwrite a file it did not write: a README, the DVC report page, a folder are
    refused and left as they were; a page carrying GENERATOR_META is replaced."""
    readme = tmp_path / "README.md"
    readme.write_text("# my project\n")
    report = tmp_path / "report.html"
    report.write_text("<!DOCTYPE html><html><head><title>report</title></head></html>\n")
    folder = tmp_path / "runs.html"
    folder.mkdir()
    for target in (readme, report, folder):
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(OutputPathError, match="refusing to overwrite"):
            write_runs_page(rows(), target)
        assert sorted(tmp_path.rglob("*")) == before
    assert readme.read_text() == "# my project\n" and "<title>report</title>" in report.read_text()
    page = tmp_path / "reports/page.html"
    write_runs_page(rows(), page)
    assert GENERATOR_META in page.read_text()
    write_runs_page([], page)
    assert page.read_text() == runs_page_html([])
