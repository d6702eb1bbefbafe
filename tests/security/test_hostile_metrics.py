"""Metrics files are someone else's files (`dvc pull`, a shared folder): a record whose fields
have the wrong structure (a string where an object belongs, a list where a number belongs)
must not break the compare stage, the report page or the model card. The leaderboard refuses a
score that is not a number (StageInputError naming the file and the key: ranking needs
numbers); the page and the card show a malformed field as "n/a" / "not recorded" or as a
one-line note naming the file and the key. Nothing from the file reaches the outputs as
markup."""

from __future__ import annotations

import copy
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from genlab.errors import StageInputError
from genlab.export.model_card import NOT_RECORDED, render_model_card, write_model_card
from genlab.io import write_json
from genlab.layout import metrics_file, run_name, stage_instance
from genlab.reporting import build_report
from genlab.reporting.leaderboard import (
    build_leaderboard,
    leaderboard_markdown,
    read_seed_metrics,
    scores_csv,
)

from ..support.dvc_project import run_files

SCRIPT = "<script>alert(1)</script>"
COUNTS = [250, 500, 1000]


def interval(value: float) -> dict[str, float]:
    return {"low": value * 0.8, "high": value * 1.2, "std": value * 0.1}


def curve(fid: float) -> dict[str, Any]:
    return {
        "counts": COUNTS,
        "fid": [fid * (1 + 100 / n) for n in COUNTS],
        "kid_mean": [5 * fid * (1 + 50 / n) for n in COUNTS],
        "fid_inf": fid * 0.95,
        "draws": 3,
        "skipped": [],
    }


def record(model: str, fid: float) -> dict[str, Any]:
    """A well-formed metrics/<model>.json, in the shape the evaluate stage writes."""
    manifold = {"precision": 0.5, "recall": 0.4, "density": 0.3, "coverage": 0.35}
    floor = {"fid": 3.6, "isc_mean": 9.3, "isc_std": 0.1, "kid_mean": 2.0, "kid_std": 1.0}
    scores = {"fid": fid, "kid_mean": 5 * fid, **manifold}
    return {
        "model": model,
        "run_id": f"run-{model}",
        "extractor": "classifier",
        "weights_sha256": "ab" * 32,
        **scores,
        "isc_mean": 5.0,
        "isc_std": 0.2,
        "kid_std": 20.0,
        "fid_inf": fid * 0.95,
        "intervals": {k: interval(v) for k, v in scores.items()},
        "floor": {**floor, **manifold, "fid_inf": 2.0, "intervals": {"fid": interval(3.6)}},
        "untrained": {"fid": 1300.0, "kid_mean": 3400.0},
        "sample_counts": {"model": curve(fid), "floor": curve(3.6)},
        "comparability": {
            "extractor": "classifier",
            "feature_extractor": "genlab-classifier",
            "weights_sha256": "ab" * 32,
            "weights_known": None,
            "input": {"filter": "bilinear", "size": 32},
            "reference": {"split": "test", "size": 360},
            "floor_samples": {"split": "train", "size": 1437},
            "samples": 1000,
            "sample_seed": 1234,
            "nearest_k": 3,
            "bootstrap": {"rounds": 200, "level": 0.95, "seed": 0},
            "sample_counts": {"counts": COUNTS, "draws": 3, "skipped": []},
            "versions": {"torch": "2.13.0", "torch-fidelity": "0.4.0"},
        },
        "memorization": {
            "extractor": "classifier",
            "feature": {
                "threshold": 1.0,
                "fraction_below_threshold": 0.01,
                "sample_nn_median": 2.0,
                "test_nn_median": 1.5,
            },
            "pixel": {
                "threshold": 3.0,
                "fraction_below_threshold": 0.0,
                "sample_nn_median": 4.0,
                "test_nn_median": 3.5,
            },
            "expected_fraction_for_real_data": 0.05,
        },
        "counts": {"samples": 1000, "reference": 360},
        "splits": {"reference": "test"},
        "train_steps": 20,
        "train_images_per_s": 1000.0,
    }


def with_field(base: dict[str, Any], dotted: str, value: Any) -> Any:
    """``base`` with the field at ``dotted`` (``a.b.c``; empty: the whole record) replaced."""
    if not dotted:
        return value
    changed = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    target = changed
    for key in parents:
        target = target[key]
    target[last] = value
    return changed


# (dotted key, the value someone else's file holds there)
MALFORMED = [
    ("comparability.weights_sha256", 12345),
    ("comparability.weights_known", [True]),
    ("comparability.bootstrap.level", SCRIPT),
    ("comparability.bootstrap.level", [0.95]),
    ("comparability.bootstrap", [200, 0.95]),
    ("comparability.versions", ["torch", SCRIPT]),
    ("comparability.versions", {SCRIPT: [SCRIPT]}),
    ("comparability.input", SCRIPT),
    ("comparability.input.size", [32]),
    ("comparability.reference", SCRIPT),
    ("comparability.floor_samples", 7),
    ("comparability.sample_counts", SCRIPT),
    ("comparability.samples", {"n": SCRIPT}),
    ("comparability", SCRIPT),
    ("sample_counts", SCRIPT),
    ("sample_counts", [1, 2]),
    ("sample_counts.model", [250, 500]),
    ("sample_counts.floor", SCRIPT),
    ("sample_counts.model.counts", [SCRIPT, 500, 1000]),
    ("sample_counts.model.counts", "250, 500, 1000"),
    ("sample_counts.model.fid", [SCRIPT, 1.0, 2.0]),
    ("sample_counts.model.fid_inf", SCRIPT),
    ("sample_counts.floor.fid_inf", [1.0]),
    ("sample_counts.floor.kid_mean", {"a": 1}),
    ("sample_counts.model.fid", [float("nan"), float("inf"), 1.0]),
    ("fid", SCRIPT),
    ("kid_mean", [1.0]),
    ("fid_inf", "1.5"),
    ("precision", True),
    ("intervals", SCRIPT),
    ("intervals.kid_mean", [1.0, 2.0]),
    ("intervals.fid.low", SCRIPT),
    ("floor", SCRIPT),
    ("floor.kid_mean", {"v": 1}),
    ("floor.intervals", [1]),
    ("untrained", [1300.0]),
    ("untrained.fid", SCRIPT),
    ("memorization", SCRIPT),
    ("memorization.feature", 0.5),
    ("memorization.feature.fraction_below_threshold", SCRIPT),
    ("memorization.expected_fraction_for_real_data", [0.05]),
    ("extractor", ["classifier"]),
    ("extractor", f"classifier`{SCRIPT}"),
    ("run_id", SCRIPT),
    ("train_steps", SCRIPT),
    ("", [1, 2, 3]),
    ("", SCRIPT),
]
CASES = [
    pytest.param(key, value, id=f"{key or 'record'}={json.dumps(value)[:30]}")
    for key, value in MALFORMED
]


def write_metrics(folder: Path, records: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for model, content in records.items():
        # json.dumps as the evaluate stage's write_json does (NaN / Infinity included)
        (folder / f"{model}.json").write_text(json.dumps(content))


def write_seed_runs(folder: Path, records: dict[str, Any], seed: int = 0) -> None:
    """metrics/<model>-seed<seed>.json, the file the compare stage reads for that run; a
    record that is a JSON object is given the run's seed (a malformed one stays as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    for model, content in records.items():
        if isinstance(content, dict):
            content = {**content, "seed": seed, "run_name": run_name(model, seed)}
        metrics_file(folder, run_name(model, seed)).write_text(json.dumps(content))


def no_markup(text: str) -> None:
    assert "<script" not in text.lower(), text[text.lower().index("<script") - 200 :][:400]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize(("key", "value"), CASES)
def test_compare_ranks_or_refuses_naming_the_file(tmp_path, key, value):
    """The compare stage's reader (read_seed_metrics) + build_leaderboard: a malformed score is
    refused with the file and the key named; any other malformed field ranks, shown as n/a,
    with no markup in the outputs."""
    metrics = tmp_path / "metrics"
    write_seed_runs(
        metrics, {"good": record("good", 40.0), "bad": with_field(record("bad", 60.0), key, value)}
    )
    for rank_by in ("kid_mean", "fid"):
        try:
            per_seed = read_seed_metrics(metrics, ["good", "bad"], [0])
            first = {model: runs[0] for model, runs in per_seed.items()}
            board = build_leaderboard(first, rank_by, per_seed, metrics)
        except StageInputError as error:
            message = str(error)
            assert str(metrics_file(metrics, run_name("bad", 0))) in message, message
            assert f"`dvc repro -f {stage_instance('evaluate', 'bad', 0)}`" in message, message
            if key:
                assert f"`{key.split('.')[0]}" in message, message
            assert message.isprintable() and len(message) < 600, message
            continue
        assert board["ranking"] == ["good", "bad"]
        json.dumps(board)  # what compare writes as leaderboard.json
        no_markup(leaderboard_markdown(board))
        no_markup(scores_csv(board))


@pytest.mark.parametrize(("key", "value"), CASES)
def test_report_page_is_written_with_the_field_shown_as_na_or_a_note(tmp_path, key, value):
    """build_report reads metrics/<model>.json itself (sample-count plot, comparability
    table): the page is written, a malformed field reads n/a or a note naming the file."""
    good = {"good": record("good", 40.0), "other": record("other", 60.0)}
    leaderboard = tmp_path / "leaderboard" / "leaderboard.json"
    write_json(leaderboard, build_leaderboard(good, "kid_mean"))
    metrics = tmp_path / "metrics"
    write_metrics(metrics, {**good, "other": with_field(good["other"], key, value)})
    out = build_report(
        leaderboard, tmp_path / "runs", tmp_path / "report.html", metrics_dir=metrics
    )
    page = out.read_text()
    no_markup(page)
    parser = Tags()
    parser.feed(page)
    assert not [t for t, _ in parser.tags if t in ("script", "iframe", "object", "embed")]
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in parser.tags if t == "img")
    assert "What decides the numbers" in page and "Scores against the sample count" in page
    if key.startswith("sample_counts"):
        notes = re.findall(r'<p class="note missing">([^<]*)</p>', page)
        assert any(str(metrics / "other.json") in n and "sample_counts" in n for n in notes), notes


@pytest.mark.parametrize(("key", "value"), CASES)
def test_model_card_is_written_with_the_field_not_recorded(tmp_path, key, value):
    metrics = json.loads(json.dumps(with_field(record("bad", 60.0), key, value)))
    info = {"model_name": "bad", "metrics": metrics}
    card = write_model_card(tmp_path / "MODEL_CARD.md", info).read_text()
    no_markup(card)
    assert "## Evaluation" in card and "## Memorization" in card and "## Limitations" in card
    assert not [line for line in card.splitlines() if line.startswith("<")], "raw HTML block"


def cell(page: str, model: str, column: str) -> str:
    """The text of one cell of the page's comparability table."""
    table = page.split('<table id="comparability">')[1].split("</table>")[0]
    head = re.findall(r"<th>([^<]*)</th>", table)
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1]):
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        if cells[0] == model:
            return cells[head.index(column)]
    raise AssertionError(f"no row for {model}")


@pytest.mark.parametrize(
    ("key", "value", "column"),
    [
        ("comparability.weights_sha256", 12345, "weights sha256"),
        ("comparability.bootstrap.level", SCRIPT, "bootstrap"),
        ("comparability.bootstrap", [200, 0.95], "bootstrap"),
        ("comparability.versions", ["torch", SCRIPT], "versions"),
        ("comparability.input", SCRIPT, "input"),
        ("comparability.reference", SCRIPT, "reference (split, size)"),
        ("comparability.samples", {"n": SCRIPT}, "samples"),
    ],
)
def test_a_malformed_comparability_fact_reads_na(tmp_path, key, value, column):
    good = {"good": record("good", 40.0), "other": record("other", 60.0)}
    leaderboard = tmp_path / "leaderboard.json"
    write_json(leaderboard, build_leaderboard(good, "kid_mean"))
    metrics = tmp_path / "metrics"
    write_metrics(metrics, {**good, "other": with_field(good["other"], key, value)})
    page = build_report(leaderboard, tmp_path, tmp_path / "r.html", metrics_dir=metrics).read_text()
    shown = cell(page, "other", column)
    assert shown == "n/a" or shown.endswith("n/a level"), shown
    assert cell(page, "good", column) != shown, "the well-formed row still shows its fact"


def test_a_malformed_model_curve_is_a_note_and_a_malformed_floor_curve_is_left_out(tmp_path):
    good = {"good": record("good", 40.0), "other": record("other", 60.0)}
    leaderboard = tmp_path / "leaderboard.json"
    write_json(leaderboard, build_leaderboard(good, "kid_mean"))
    metrics = tmp_path / "metrics"
    broken_model = with_field(good["good"], "sample_counts.model.counts", [SCRIPT, 500, 1000])
    broken_floor = with_field(good["other"], "sample_counts.floor.fid_inf", SCRIPT)
    write_metrics(metrics, {"good": broken_model, "other": broken_floor})
    page = build_report(leaderboard, tmp_path, tmp_path / "r.html", metrics_dir=metrics).read_text()
    notes = [html.unescape(n) for n in re.findall(r'<p class="note missing">([^<]*)</p>', page)]
    (model_note,) = [n for n in notes if str(metrics / "good.json") in n]
    assert "`sample_counts.model.counts` malformed" in model_note, model_note
    assert f"`dvc repro -f {stage_instance('evaluate', 'good', None)}`" in model_note, model_note
    (floor_note,) = [n for n in notes if str(metrics / "other.json") in n]
    assert "`sample_counts.floor.fid_inf` malformed" in floor_note
    plots = [a["alt"] for t, a in _tags(page) if t == "img" and a["alt"].startswith("FID and KID")]
    assert len(plots) == 1 and plots[0].startswith("FID and KID of other and"), plots


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def test_a_score_that_is_not_a_number_is_refused_naming_file_and_key(tmp_path):
    metrics = tmp_path / "metrics"
    for key, value in (("fid", "12.5"), ("floor.kid_mean", [1.0]), ("intervals.fid.low", "x")):
        write_seed_runs(
            metrics, {"a": record("a", 40.0), "b": with_field(record("b", 60.0), key, value)}
        )
        with pytest.raises(StageInputError) as refused:
            read_seed_metrics(metrics, ["a", "b"], [0])
        message = str(refused.value)
        path = metrics_file(metrics, run_name("b", 0))
        assert str(path) in message and f"`{key}`" in message, message
        assert "not a number" in message, message
        assert f"`dvc repro -f {stage_instance('evaluate', 'b', 0)}`" in message, message


def test_the_model_card_shows_a_malformed_score_and_level_as_not_recorded():
    metrics = record("m", 60.0)
    metrics["fid"] = SCRIPT
    metrics["intervals"]["kid_mean"] = SCRIPT
    metrics["comparability"]["bootstrap"]["level"] = [0.95]
    metrics["comparability"]["weights_known"] = [True]
    metrics["memorization"]["feature"]["fraction_below_threshold"] = "1%"
    card = render_model_card({"model_name": "m", "metrics": metrics})
    assert f"| FID | lower | {NOT_RECORDED} |" in card
    assert "| KID (mean) | lower | 300 | 2 |" in card, "no interval from a malformed one"
    assert "| Metric | Better | Model | Real-vs-real floor |" in card, "level not recorded"
    assert f"bootstrap 200 rounds at {NOT_RECORDED}" in card
    assert "known weights" not in card and ", known" not in card
    assert f"| {NOT_RECORDED} |" in card.split("## Memorization")[1].split("##")[0]


@pytest.mark.parametrize("intervals", ["x", [1], {"fid": [1]}, {"fid": "low"}, None])
def test_flat_scores_of_malformed_intervals_have_no_bounds(intervals):
    from genlab.metric_keys import flat_scores

    flat = flat_scores({"fid": 1.0, "intervals": intervals})
    assert flat["fid"] == 1.0 and flat["fid_low"] is None and flat["fid_high"] is None


@pytest.mark.parametrize("text", ["not json {", "[1, 2]", '"a string"', "\udcff"])
def test_export_refuses_a_metrics_file_that_is_not_a_json_object(tmp_path, text, compose_config):
    from genlab.errors import StageInputError
    from genlab.stages.export import read_metrics

    cfg = compose_config("model=dcgan", f"paths.metrics_dir={tmp_path / 'metrics'}")
    run = run_files("dcgan", cfg.seed, root=tmp_path)  # metrics/<run name>.json, evaluate@...
    run.metrics.parent.mkdir(parents=True, exist_ok=True)
    run.metrics.write_bytes(text.encode("utf-8", "surrogateescape"))
    refused = rf"{re.escape(run.metrics.name)} is refused.*{re.escape(run.stage('evaluate'))}"
    with pytest.raises(StageInputError, match=refused):
        read_metrics(cfg)
