"""Per-class figures on the leaderboard, through the real compare stage on metrics files
written here (metric_keys' per_class contract): class accuracy and intra-class KID per model
(first seed, mean ± std over seeds) in leaderboard.json / .md / scores.csv, each model's
per-class table with its worst class marked and a link to its class grid; a metrics file's
per_class is someone else's data, so NaN, strings, huge lists and class names with control
characters read "not recorded" / "n/a" and never stop the ranking; a file from before
per-class evaluation still ranks."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest

from genlab.checks import MAX_CLASSES
from genlab.layout import class_grid, metrics_file, run_name
from genlab.metric_keys import (
    CLASS_ACCURACY,
    CLASSES_DRAWN,
    INTRA_CLASS_KID,
    PER_CLASS,
    PER_CLASS_ROW_KEYS,
    SEED_AGGREGATES,
    WORST_CLASS,
)
from genlab.reporting.leaderboard import markdown_text

from .test_leaderboard_intervals import result, table
from .test_leaderboard_seeds import compare

CLASSES = ["zero", "one", "two"]
# per (model, seed): each class's sample accuracy (None: an unconditional model) and KID
FIGURES = {
    "cond": {
        0: {"accuracy": [0.9, 0.61, 0.8], "kid": [30.0, 50.0, 40.0]},
        1: {"accuracy": [0.95, 0.7, 0.85], "kid": [25.0, 45.0, 35.0]},
    },
    "uncond": {
        0: {"accuracy": [None] * 3, "kid": [60.0, 55.0, 90.0]},
        1: {"accuracy": [None] * 3, "kid": [70.0, 65.0, 80.0]},
    },
}


def per_class(accuracy: list, kid: list, conditional: bool, names=CLASSES) -> dict:
    """A per_class section in the contract's shape (metric_keys.PER_CLASS_ROW_KEYS)."""
    rows = [
        {
            "class": name,
            "index": index,
            "samples": 100 + index,
            "test_images": 30 + index,
            "kid_mean": kid[index],
            "kid_std": 2.0,
            "accuracy": accuracy[index],
            "memorized_fraction": 0.01 * index,
        }
        for index, name in enumerate(names)
    ]
    return {"conditional": conditional, "rows": rows, WORST_CLASS: None, "grid": "x.png"}


def record(model: str, seed: int, fid: float, **extra) -> dict:
    """metrics/<model>-seed<k>.json as evaluate writes it, with its per-class figures."""
    figures = FIGURES[model][seed]
    accuracy = [a for a in figures["accuracy"] if a is not None]
    body = result(fid + seed, 0.01, run_id=f"{model}{seed}")
    body.update(
        model=model,
        seed=seed,
        run_name=run_name(model, seed),
        **{
            PER_CLASS: per_class(figures["accuracy"], figures["kid"], model == "cond"),
            CLASS_ACCURACY: statistics.fmean(accuracy) if accuracy else None,
            INTRA_CLASS_KID: statistics.fmean(figures["kid"]),
        },
    )
    body.update(extra)
    return body


def write(metrics: Path, model: str, seed: int, body: dict) -> None:
    """Plain json.dumps: it writes NaN and Infinity the way a hostile or broken file holds
    them (genlab's write_json would too, but this says so)."""
    path = metrics_file(metrics, run_name(model, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def write_both(tmp_path: Path, seeds=(0, 1)) -> Path:
    metrics = tmp_path / "metrics"
    for seed in seeds:
        write(metrics, "cond", seed, record("cond", seed, 20.0))
        write(metrics, "uncond", seed, record("uncond", seed, 40.0))
    return metrics


def per_class_table(markdown: str, model: str) -> list[dict[str, str]]:
    """The rows of the model's per-class table in leaderboard.md (after its ### heading)."""
    section = markdown.split(f"### {model} (run ")[1].split("###")[0]
    return table(section, 0)


def test_class_figures_per_model_in_json_markdown_and_csv(tmp_path):
    write_both(tmp_path)
    board = compare(tmp_path, ["cond", "uncond"], [0, 1])
    cond, uncond = board["models"]["cond"], board["models"]["uncond"]
    accuracy = {s: statistics.fmean(FIGURES["cond"][s]["accuracy"]) for s in (0, 1)}
    assert cond[CLASS_ACCURACY] == pytest.approx(accuracy[0]), "the first seed's"
    over = cond["over_seeds"][CLASS_ACCURACY]
    assert over["mean"] == pytest.approx(statistics.fmean(accuracy.values()))
    assert over["std"] == pytest.approx(statistics.stdev(accuracy.values()))
    assert over["n"] == 2
    assert uncond[CLASS_ACCURACY] is None and uncond["over_seeds"][CLASS_ACCURACY]["n"] == 0
    kids = {s: statistics.fmean(FIGURES["uncond"][s]["kid"]) for s in (0, 1)}
    assert uncond["over_seeds"][INTRA_CLASS_KID]["mean"] == pytest.approx(
        statistics.fmean(kids.values())
    )

    section = cond[PER_CLASS]
    assert [row["class"] for row in section["rows"]] == CLASSES
    assert all(set(row) == set(PER_CLASS_ROW_KEYS) for row in section["rows"])
    assert section["conditional"] is True and uncond[PER_CLASS]["conditional"] is False
    assert section[WORST_CLASS] == "one", "lowest accuracy (0.61), not the file's null"
    assert uncond[PER_CLASS][WORST_CLASS] == "two", "unconditional: highest intra-class KID"
    metrics = tmp_path / "metrics"
    assert section["grid"] == str(class_grid(metrics, run_name("cond", 0))), "not the file's"

    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    summary = {row["model"]: row for row in table(markdown, 2)}
    assert summary["cond"]["conditional"] == "yes" and summary["uncond"]["conditional"] == "no"
    assert summary["cond"]["class accuracy"] == f"{accuracy[0]:.1%}"
    assert summary["cond"]["class accuracy over seeds"] == (
        f"{statistics.fmean(accuracy.values()):.1%} ± "
        f"{statistics.stdev(accuracy.values()):.1%} (n=2)"
    )
    assert summary["uncond"]["class accuracy"] == "n/a"
    assert summary["cond"]["worst class"] == "one"
    assert summary["uncond"]["intra-class KID x 1"] == f"{kids[0]:.4g}"
    rows = per_class_table(markdown, "cond")
    assert [row["class"] for row in rows] == CLASSES
    assert [row["worst"] for row in rows] == ["", "worst", ""]
    assert rows[1]["accuracy"] == "61.0%" and rows[1]["samples"] == "101"
    assert rows[1]["test images"] == "31" and rows[2]["too close"] == "2.0%"
    assert rows[0]["intra-class KID x 1"] == "30 ± 2"
    assert [row["worst"] for row in per_class_table(markdown, "uncond")] == ["", "", "worst"]
    grid = class_grid(metrics, run_name("cond", 0)).name
    assert f"[{markdown_text(grid)}](<../metrics/{grid}>)" in markdown, "relative to the .md"

    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard/scores.csv").read_text())))
    by_model = {row["model"]: row for row in rows}
    assert float(by_model["cond"][CLASS_ACCURACY]) == pytest.approx(accuracy[0])
    assert float(by_model["cond"][f"{CLASS_ACCURACY}_seeds_mean"]) == pytest.approx(
        statistics.fmean(accuracy.values())
    )
    assert by_model["uncond"][CLASS_ACCURACY] == ""
    assert float(by_model["uncond"][f"{INTRA_CLASS_KID}_seeds_max"]) == max(kids.values())
    assert all(f"{INTRA_CLASS_KID}_seeds_{agg}" in rows[0] for agg in SEED_AGGREGATES)


@pytest.mark.parametrize(
    ("extractor", "header", "factor"),
    [("classifier", "intra-class KID x 1", 1), ("inception", "intra-class KID x 10^3", 1000)],
)
def test_intra_class_kid_has_the_kid_display_scale(tmp_path, extractor, header, factor):
    metrics = tmp_path / "metrics"
    for model in ("cond", "uncond"):
        body = record(model, 0, 20.0, extractor=extractor)
        for row in body[PER_CLASS]["rows"]:
            row["kid_mean"] /= 1000  # Inception-sized KIDs
        write(metrics, model, 0, body)
    compare(tmp_path, ["cond", "uncond"], [0])
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    rows = per_class_table(markdown, "uncond")
    wanted = FIGURES["uncond"][0]["kid"][2] / 1000 * factor
    assert rows[2][header].split(" ±")[0] == f"{wanted:.4g}"
    assert header in table(markdown, 2)[0]


def _nan_accuracy(section: dict) -> None:
    section["rows"][1]["accuracy"] = math.nan


def _string_kid(section: dict) -> None:
    section["rows"][0]["kid_mean"] = "<b>30</b>"


def _out_of_range(section: dict) -> None:
    section["rows"][0]["accuracy"] = 7.5
    section["rows"][0]["samples"] = -3
    section["rows"][2]["test_images"] = 10**400


@pytest.mark.parametrize("spoil", [_nan_accuracy, _string_kid, _out_of_range])
def test_a_malformed_figure_reads_na_and_the_rest_is_shown(tmp_path, spoil):
    metrics = write_both(tmp_path, seeds=(0,))
    body = record("cond", 0, 20.0)
    spoil(body[PER_CLASS])
    body[CLASS_ACCURACY] = math.inf
    write(metrics, "cond", 0, body)
    board = compare(tmp_path, ["cond", "uncond"], [0])
    assert board["ranking"] == ["cond", "uncond"], "ranked all the same"
    row = board["models"]["cond"]
    assert row[CLASS_ACCURACY] is None, "Infinity: not recorded"
    rows = row[PER_CLASS]["rows"]
    assert [r["class"] for r in rows] == CLASSES
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    shown = per_class_table(markdown, "cond")
    assert "n/a" in {cell for r in shown for cell in r.values()}
    assert "<b>" not in markdown and "nan" not in markdown.lower().replace("n/a", "")
    assert table(markdown, 2)[0]["class accuracy"] == "n/a"
    if spoil is _nan_accuracy:
        assert rows[1]["accuracy"] is None
        assert row[PER_CLASS][WORST_CLASS] == "two", "the worst of the numbers left (0.8)"
    json.loads((tmp_path / "leaderboard" / "leaderboard.json").read_text(), parse_constant=_no)


def _no(constant: str):
    raise AssertionError(f"leaderboard.json holds {constant}")


@pytest.mark.parametrize(
    "section",
    [
        "per class",
        [1, 2, 3],
        {"rows": "many"},
        {"rows": []},
        {"rows": [{"class": "a"}, "b"]},
        {"rows": [{"class": f"c{i}", "accuracy": 0.5} for i in range(MAX_CLASSES + 1)]},
        {"rows": [{"class": "bad\x1b[2Jname", "accuracy": 0.5}]},
        {"rows": [{"class": "a\nb", "accuracy": 0.5}]},
        {"rows": [{"class": "same"}, {"class": "same"}]},
        {"rows": [{"class": 7, "accuracy": 0.5}]},
    ],
    ids=[
        "string",
        "list",
        "rows-string",
        "no-rows",
        "row-not-object",
        "huge",
        "escape-sequence",
        "newline",
        "duplicate",
        "number-name",
    ],
)
def test_a_malformed_per_class_section_reads_not_recorded(tmp_path, section):
    metrics = write_both(tmp_path, seeds=(0,))
    write(metrics, "cond", 0, record("cond", 0, 20.0, **{PER_CLASS: section}))
    board = compare(tmp_path, ["cond", "uncond"], [0])
    row = board["models"]["cond"]
    assert row[PER_CLASS] is None and row["per_class_note"].startswith("not recorded")
    assert board["models"]["uncond"][PER_CLASS] is not None, "the other model still shows"
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert "Per-class figures: not recorded" in markdown.split("### cond (run ")[1]
    assert "\x1b" not in markdown and "a\nb" not in markdown
    assert len(markdown) < 20_000, "a huge list is not copied into the board"


def test_a_metrics_file_from_before_per_class_still_ranks(tmp_path):
    metrics = write_both(tmp_path, seeds=(0,))
    old = record("cond", 0, 20.0)
    for key in (PER_CLASS, CLASS_ACCURACY, INTRA_CLASS_KID):
        del old[key]
    write(metrics, "cond", 0, old)
    board = compare(tmp_path, ["cond", "uncond"], [0])
    row = board["models"]["cond"]
    assert row[PER_CLASS] is None and row[CLASS_ACCURACY] is None
    assert row["per_class_note"] == "not recorded"
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert "Per-class figures: not recorded." in markdown
    summary = {r["model"]: r for r in table(markdown, 2)}
    assert summary["cond"]["class accuracy"] == "n/a"
    assert summary["cond"]["worst class"] == "not recorded"
    assert summary["uncond"]["worst class"] == "two"
    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard/scores.csv").read_text())))
    assert csv_rows[0][INTRA_CLASS_KID] == "" and csv_rows[1][INTRA_CLASS_KID] != ""


def _undrawn(drawn) -> dict:
    """An unconditional seed-0 record whose model never drew class "two" (1 sample, no KID)."""
    body = record("uncond", 0, 40.0)
    rows = body[PER_CLASS]["rows"]
    rows[2].update(samples=1, kid_mean=None, kid_std=None)
    body[PER_CLASS][CLASSES_DRAWN] = drawn
    body[INTRA_CLASS_KID] = statistics.fmean([rows[0]["kid_mean"], rows[1]["kid_mean"]])
    return body


def test_a_class_the_model_does_not_draw_is_named_and_counted(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "cond", 0, record("cond", 0, 20.0))
    write(metrics, "uncond", 0, _undrawn(2))
    board = compare(tmp_path, ["cond", "uncond"], [0])
    section = board["models"]["uncond"][PER_CLASS]
    assert section[CLASSES_DRAWN] == 2 and section[WORST_CLASS] == "two"
    saved = json.loads((tmp_path / "leaderboard" / "leaderboard.json").read_text())
    assert saved["models"]["uncond"][PER_CLASS][CLASSES_DRAWN] == 2
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    summary = {row["model"]: row for row in table(markdown, 2)}
    assert summary["uncond"]["intra-class KID x 1"].endswith("(2 of 3 classes drawn)")
    assert summary["uncond"]["worst class"] == "two"
    assert "classes drawn" not in summary["cond"]["intra-class KID x 1"]
    assert "Only 2 of 3 classes drawn" in markdown.split("### uncond")[1]


@pytest.mark.parametrize("drawn", [True, 4, -1, "2", 2.5, None, [2]])
def test_a_hostile_classes_drawn_is_not_shown(tmp_path, drawn):
    metrics = tmp_path / "metrics"
    write(metrics, "cond", 0, record("cond", 0, 20.0))
    write(metrics, "uncond", 0, _undrawn(drawn))
    board = compare(tmp_path, ["cond", "uncond"], [0])
    assert board["models"]["uncond"][PER_CLASS][CLASSES_DRAWN] is None
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    summary = {row["model"]: row for row in table(markdown, 2)}
    assert "classes drawn" not in summary["uncond"]["intra-class KID x 1"]
    assert "Only" not in markdown.split("### uncond")[1]
    assert summary["uncond"]["worst class"] == "two", "from the rows, never from the file"
