"""The report page's per-class section, from a leaderboard the real compare stage builds and
class grids the evaluate stage would write (layout.class_grid): the summary over models, the
side-by-side comparison of per-class accuracy and intra-class KID, each model's per-class
table with its worst class marked, the class grid embedded (only when the file exists), and
"not recorded" notes for an old or malformed per_class, never markup from the file."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

from genlab.layout import class_grid, run_name
from genlab.metric_keys import CLASS_ACCURACY, CLASSES_DRAWN, INTRA_CLASS_KID, PER_CLASS
from genlab.reporting import build_report

from .test_leaderboard_per_class import per_class
from .test_report import SCORES, decoded_png, metrics_result, png, write_project

CLASSES = ["zero", "<b>one</b>", "two"]
# per model: the sample accuracy per class (None: unconditional) and intra-class KID
FIGURES = {
    "stylegan": ([0.9, 0.5, 0.8], [30.0, 50.0, 40.0]),
    "vae": ([0.7, 0.75, 0.6], [45.0, 35.0, 55.0]),
    "dcgan": ([None] * 3, [60.0, 90.0, 70.0]),
}
# a class grid per model, a distinct size each (three rows of eight 8-px samples)
CLASS_GRID_SIZES = {"stylegan": (64, 24), "vae": (72, 27)}


class Tables(HTMLParser):
    """Every table's rows (cell texts and the row's class) by the table's id or data-model,
    and every image's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.images: list[dict[str, str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id") or f"per-class:{attributes.get('data-model')}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append((attributes.get("class") or "", []))
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parsed(page: str) -> Tables:
    tables = Tables()
    tables.feed(page)
    return tables


def results(**changes) -> dict[str, dict]:
    """Each model's first seed's metrics record with its per-class figures (``changes``:
    {model: {key: value}} on top)."""
    out = {}
    for model in SCORES:
        accuracy, kid = FIGURES[model]
        record = metrics_result(model)
        known = [a for a in accuracy if a is not None]
        record.update(
            {
                PER_CLASS: per_class(accuracy, kid, model != "dcgan", names=CLASSES),
                CLASS_ACCURACY: sum(known) / len(known) if known else None,
                INTRA_CLASS_KID: sum(kid) / len(kid),
                **changes.get(model, {}),
            }
        )
        out[model] = record
    return out


def build(tmp_path: Path, records: dict[str, dict]) -> tuple[str, Path]:
    leaderboard, runs, metrics = write_project(tmp_path, records)
    for model, size in CLASS_GRID_SIZES.items():
        png(class_grid(metrics, run_name(model, 0)), size, 150)
    out = build_report(leaderboard, runs, tmp_path / "report.html", metrics_dir=metrics)
    return out.read_text(), metrics


def test_each_model_has_its_per_class_table_worst_marked_and_its_grid(tmp_path):
    page, metrics = build(tmp_path, results())
    tables = parsed(page)
    for model, (accuracy, kid) in FIGURES.items():
        header, *rows = tables.tables[f"per-class:{model}"]
        columns = header[1]
        assert columns[:4] == ["class", "samples", "test images", "intra-class KID x 1"]
        assert [cells[0] for _, cells in rows] == CLASSES, "names as text, escaped"
        worst = (
            min(range(3), key=lambda i: accuracy[i])
            if model != "dcgan"
            else max(range(3), key=lambda i: kid[i])
        )
        assert [css for css, _ in rows] == ["worst" if i == worst else "" for i in range(3)]
        assert [cells[columns.index("worst")] for _, cells in rows][worst] == "worst"
        shown = [cells[columns.index("accuracy")] for _, cells in rows]
        assert shown == [f"{a:.1%}" if a is not None else "n/a" for a in accuracy]
    assert "<b>one</b>" not in page and html.escape("<b>one</b>") in page

    grids = {i["alt"].split(":")[0]: i for i in tables.images if i["alt"].startswith("class grid")}
    assert len(grids) == len(CLASS_GRID_SIZES)
    for model, size in CLASS_GRID_SIZES.items():
        (image,) = [i for alt, i in grids.items() if f" {model}" in alt]
        assert decoded_png(image["src"]).size == size
    missing = class_grid(metrics, run_name("dcgan", 0))
    assert f"dcgan: no class grid ({missing} missing or not a PNG)" in html.unescape(page)


def test_summary_and_side_by_side_view_of_every_model(tmp_path):
    page, _ = build(tmp_path, results())
    tables = parsed(page).tables
    header, *rows = tables["per-class-summary"]
    summary = {cells[0]: dict(zip(header[1], cells, strict=True)) for _, cells in rows}
    assert list(summary) == ["stylegan", "vae", "dcgan"], "rank order"
    assert [summary[m]["conditional"] for m in summary] == ["yes", "yes", "no"]
    assert summary["dcgan"]["class accuracy"] == "n/a"
    assert summary["vae"]["class accuracy"] == f"{sum(FIGURES['vae'][0]) / 3:.1%}"
    assert summary["vae"]["worst class"] == "two"

    header, *rows = tables["per-class-compare"]
    columns = header[1]
    assert columns[0] == "class"
    for model in SCORES:
        assert f"{model}: accuracy" in columns and f"{model}: intra-class KID x 1" in columns
    for index, (_, cells) in enumerate(rows):
        assert cells[0] == CLASSES[index]
        for model, (accuracy, kid) in FIGURES.items():
            cell = cells[columns.index(f"{model}: intra-class KID x 1")]
            assert cell == f"{kid[index]:.4g} ± 2"
            wanted = "n/a" if accuracy[index] is None else f"{accuracy[index]:.1%}"
            assert cells[columns.index(f"{model}: accuracy")] == wanted


def test_old_and_malformed_per_class_are_notes_not_a_crash(tmp_path):
    old = {PER_CLASS: None, CLASS_ACCURACY: None, INTRA_CLASS_KID: None}
    broken = {PER_CLASS: {"rows": [{"class": "a\x1b[31m"}]}, CLASS_ACCURACY: "<i>1</i>"}
    page, _ = build(tmp_path, results(vae=old, stylegan=broken))
    tables = parsed(page).tables
    assert "per-class:vae" not in tables and "per-class:stylegan" not in tables
    assert "per-class:dcgan" in tables
    text = html.unescape(page)
    assert "vae: per-class figures not recorded" in text
    assert "stylegan: per-class figures not recorded (malformed `per_class.rows`" in text
    assert "\x1b" not in page and "<i>1</i>" not in page
    header, *rows = tables["per-class-summary"]
    summary = {cells[0]: dict(zip(header[1], cells, strict=True)) for _, cells in rows}
    assert summary["stylegan"]["class accuracy"] == "n/a"
    compared = tables["per-class-compare"]
    assert all(cells[compared[0][1].index("vae: accuracy")] == "n/a" for _, cells in compared[1:])


def test_a_hostile_leaderboard_json_per_class_is_checked_again(tmp_path):
    """The page reads leaderboard.json, someone else's file too: its per_class rows are
    checked again, its grid path is never used (the grid comes from layout.class_grid)."""
    import json

    leaderboard, runs, metrics = write_project(tmp_path, results())
    board = json.loads(leaderboard.read_text())
    row = board["models"]["vae"]
    row[PER_CLASS]["rows"][0]["class"] = "evil\u202ename"
    board["models"]["stylegan"][PER_CLASS]["grid"] = "/etc/passwd"
    board["models"]["stylegan"][PER_CLASS]["rows"][0]["accuracy"] = "<script>x</script>"
    leaderboard.write_text(json.dumps(board))
    png(class_grid(metrics, run_name("stylegan", 0)), (64, 24), 150)
    page = build_report(leaderboard, runs, tmp_path / "r.html", metrics_dir=metrics).read_text()
    tables = parsed(page).tables
    assert "per-class:vae" not in tables and "\u202e" not in page
    assert "<script>x" not in page and "passwd" not in page
    stylegan = tables["per-class:stylegan"]
    assert stylegan[1][1][stylegan[0][1].index("accuracy")] == "n/a"


def test_a_model_that_does_not_draw_every_class_says_so(tmp_path):
    records = results()
    rows = records["dcgan"][PER_CLASS]["rows"]
    rows[1].update(samples=0, kid_mean=None, kid_std=None)
    records["dcgan"][PER_CLASS][CLASSES_DRAWN] = 2
    page, _ = build(tmp_path, records)
    tables = parsed(page).tables
    header, *summary_rows = tables["per-class-summary"]
    summary = {cells[0]: dict(zip(header[1], cells, strict=True)) for _, cells in summary_rows}
    assert summary["dcgan"]["intra-class KID x 1"].endswith("(2 of 3 classes drawn)")
    assert summary["dcgan"]["worst class"] == "<b>one</b>", "the class never drawn"
    assert "classes drawn" not in summary["vae"]["intra-class KID x 1"]
    assert "dcgan: only 2 of 3 classes drawn" in html.unescape(page)
    assert "vae: only" not in html.unescape(page)
