"""The leaderboard's confidence intervals: pairs whose intervals of the ranked score overlap are
called indistinguishable (not ranked as if the order meant something), the floor's numbers sit
beside every model's, and metrics files without intervals give "n/a" and no claim, not a crash."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from genlab.errors import StageInputError
from genlab.io import write_json
from genlab.layout import metrics_file, run_name, stage_instance
from genlab.metric_keys import HIGHER_IS_BETTER, INTERVAL_SCORES, RANKABLE
from genlab.reporting.leaderboard import (
    FLOOR_LABEL,
    SCORE_COLUMNS,
    better_sentence,
    build_leaderboard,
    find_ties,
    leaderboard_markdown,
    leaderboard_rows,
    read_seed_metrics,
    scores_csv,
    tie_notes,
)

FLOOR = {
    "fid": 3.6,
    "isc_mean": 9.3,
    "isc_std": 0.1,
    "kid_mean": -26.0,
    "kid_std": 13.0,
    "precision": 0.93,
    "recall": 0.9,
    "density": 1.04,
    "coverage": 0.99,
    "fid_inf": 1.9,
    "intervals": {
        "fid": {"low": 0.0, "high": 9.4},
        "kid_mean": {"low": -52.0, "high": 14.0},
        "precision": {"low": 0.89, "high": 0.96},
        "recall": {"low": 0.84, "high": 0.94},
        "density": {"low": 0.92, "high": 1.19},
        "coverage": {"low": 0.95, "high": 1.0},
    },
}


def result(fid: float, spread: float, *, intervals: bool = True, **extra) -> dict:
    """A metrics record as evaluate writes it; KID = 5 x FID, intervals +- ``spread`` x score."""
    kid = 5 * fid
    record = {
        "extractor": "classifier",
        "fid": fid,
        "isc_mean": 5.0,
        "isc_std": 0.2,
        "kid_mean": kid,
        "kid_std": 20.0,
        "precision": 0.5,
        "recall": 0.4,
        "density": 0.3,
        "coverage": 0.35,
        "fid_inf": fid - 1.0,
        "floor": FLOOR,
        "run_id": f"run{int(fid)}",
        "train_steps": 20,
        "comparability": {"bootstrap": {"rounds": 200, "level": 0.95, "seed": 0}},
        **extra,
    }
    if intervals:
        record["intervals"] = {
            "fid": {"low": fid * (1 - spread), "high": fid * (1 + spread)},
            "kid_mean": {"low": kid * (1 - spread), "high": kid * (1 + spread)},
            "precision": {"low": 0.45, "high": 0.55},
            "recall": {"low": 0.35, "high": 0.45},
            "density": {"low": 0.2, "high": 0.4},
            "coverage": {"low": 0.3, "high": 0.4},
        }
    return record


def old_result(fid: float) -> dict:
    """A metrics file from before precision/recall, intervals and FID_inf were recorded."""
    record = result(fid, 0.0, intervals=False)
    for key in ("precision", "recall", "density", "coverage", "fid_inf", "comparability"):
        del record[key]
    record["floor"] = {k: FLOOR[k] for k in ("fid", "isc_mean", "isc_std", "kid_mean", "kid_std")}
    return record


def write_first_seeds(metrics, records: dict[str, dict]) -> dict[str, dict]:
    """metrics/<model>-seed0.json per model, as evaluate writes them; read back by the compare
    stage's reader: {model: the seed-0 record}."""
    for model, record in records.items():
        record = {**record, "model": model, "seed": 0, "run_name": run_name(model, 0)}
        write_json(metrics_file(metrics, run_name(model, 0)), record)
    per_seed = read_seed_metrics(metrics, list(records), [0])
    return {model: runs[0] for model, runs in per_seed.items()}


def table(markdown: str, index: int = 0) -> list[dict[str, str]]:
    """The rows of the Markdown's ``index``-th table (0: single runs, 1: over seeds) as
    {column: cell}."""
    tables = re.findall(r"(?:^\|.*\n)+", markdown, flags=re.MULTILINE)
    lines = tables[index].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def test_overlapping_intervals_are_tied_and_shown_with_equals():
    # kid: a 150 [105, 195], b 200 [140, 260] overlap; c 700 [490, 910] is apart from both
    board = build_leaderboard(
        {"c": result(140.0, 0.3), "a": result(30.0, 0.3), "b": result(40.0, 0.3)}, "kid_mean"
    )
    assert board["ranking"] == ["a", "b", "c"]
    assert board["indistinguishable"] == [["a", "b"]]
    assert board["models"]["a"]["tied_with"] == ["b"] and board["models"]["c"]["tied_with"] == []
    assert [board["models"][m]["rank"] for m in board["ranking"]] == [1, 2, 3]
    rows = table(leaderboard_markdown(board))
    assert [(r["rank"], r["model"]) for r in rows[:3]] == [("=1", "a"), ("=1", "b"), ("3", "c")]
    (sentence,) = [n for n in tie_notes(board) if "Not distinguishable at" in n]
    assert "a and b" in sentence and "95% intervals of `kid_mean`" in sentence
    assert sentence in leaderboard_markdown(board)


def test_disjoint_intervals_claim_the_order_is_not_noise():
    board = build_leaderboard({"a": result(30.0, 0.05), "b": result(60.0, 0.05)}, "fid")
    assert board["indistinguishable"] == []
    assert [board["models"][m]["shown_rank"] for m in board["ranking"]] == ["1", "2"]
    notes = tie_notes(board)
    assert any("do not overlap" in n and "a and b" in n for n in notes), notes
    assert not any("Not distinguishable" in n for n in notes)


def test_a_chain_of_overlaps_is_not_transitive():
    intervals = {
        "a": {"low": 1.0, "high": 3.0},
        "b": {"low": 2.5, "high": 5.0},
        "c": {"low": 4.5, "high": 7.0},
    }
    ties = find_ties(["a", "b", "c"], intervals, None)
    assert ties["pairs"] == [["a", "b"], ["b", "c"]], "a and c do not overlap"
    assert ties["shown_rank"] == {"a": "=1", "b": "=1", "c": "=2"}
    assert ties["with_floor"] == {"a": None, "b": None, "c": None}, "no floor interval: unknown"


def test_higher_is_better_order_keeps_the_ties():
    """Overlap does not care about direction: a ranking best-first for a higher-is-better
    score (precision) ties the same pairs and shows the rank of the better one."""
    intervals = {
        "p": {"low": 0.80, "high": 0.90},
        "q": {"low": 0.60, "high": 0.70},
        "r": {"low": 0.65, "high": 0.75},
    }
    ties = find_ties(["p", "r", "q"], intervals, {"low": 0.88, "high": 0.95})
    assert ties["pairs"] == [["r", "q"]]
    assert ties["shown_rank"] == {"p": "1", "r": "=2", "q": "=2"}
    assert ties["with_floor"] == {"p": True, "r": False, "q": False}
    # isc_mean ranks higher-first and has no interval: ranked, but no tie claimed
    board = build_leaderboard(
        {"low": result(30.0, 0.3, isc_mean=3.0), "high": result(31.0, 0.3, isc_mean=7.0)},
        "isc_mean",
    )
    assert board["ranking"] == ["high", "low"] and board["indistinguishable"] == []
    assert "no confidence interval" in " ".join(tie_notes(board))


def test_rank_by_fid_inf_makes_no_tie_claim():
    board = build_leaderboard({"a": result(30.0, 0.5), "b": result(31.0, 0.5)}, "fid_inf")
    assert board["ranking"] == ["a", "b"]
    assert board["indistinguishable"] == [] and board["ties"]["has_interval"] is False
    assert all(board["models"][m]["tied_with"] == [] for m in "ab")
    assert all(board["models"][m]["indistinguishable_from_floor"] is None for m in "ab")
    (note,) = tie_notes(board)
    assert "`fid_inf` has no confidence interval" in note
    assert note in leaderboard_markdown(board)


def test_a_model_within_the_floor_interval_is_called_so():
    board = build_leaderboard({"good": result(5.0, 0.5), "bad": result(100.0, 0.1)}, "fid")
    assert board["models"]["good"]["indistinguishable_from_floor"] is True
    assert board["models"]["bad"]["indistinguishable_from_floor"] is False
    assert any(
        "real-vs-real floor" in n and "good" in n and "bad" not in n for n in tie_notes(board)
    )


def test_every_model_row_sits_beside_the_floor_row_with_intervals():
    results = {"a": result(30.0, 0.1), "b": result(60.0, 0.1)}
    board = build_leaderboard(results, "kid_mean")
    rows = table(leaderboard_markdown(board))
    for column in ("precision", "recall", "density", "coverage", "FID_inf", "untrained FID"):
        assert column in rows[0], column
    by_model = {r["model"]: r for r in rows}
    for model, record in results.items():
        fid, interval = record["fid"], record["intervals"]["fid"]
        assert (
            by_model[model]["FID"] == f"{fid:.4g} [{interval['low']:.4g}, {interval['high']:.4g}]"
        )
        assert by_model[model]["FID_inf"] == f"{record['fid_inf']:.4g}"
        low, high = record["intervals"]["precision"].values()
        assert by_model[model]["precision"] == f"{record['precision']:.3g} [{low:.3g}, {high:.3g}]"
    floor = by_model[f"*{FLOOR_LABEL}*"]
    assert floor["FID"] == f"{FLOOR['fid']:.4g} [{0.0:.4g}, {9.4:.4g}]"
    assert floor["coverage"] == f"{FLOOR['coverage']:.3g} [{0.95:.3g}, {1.0:.3g}]"
    assert floor["FID_inf"] == f"{FLOOR['fid_inf']:.4g}"
    assert floor["rank"] == "" and floor["steps"] == ""


def test_scores_csv_has_every_score_and_interval_bound():
    results = {"a": result(30.0, 0.1), "b": old_result(60.0)}
    board = build_leaderboard(results, "kid_mean")
    rows = list(csv.DictReader(io.StringIO(scores_csv(board))))
    assert [r["model"] for r in rows] == ["a", "b", "real vs real (floor)"]
    assert float(rows[0]["fid_low"]) == results["a"]["intervals"]["fid"]["low"]
    assert float(rows[0]["coverage_high"]) == results["a"]["intervals"]["coverage"]["high"]
    assert float(rows[0]["fid_inf"]) == results["a"]["fid_inf"]
    assert rows[1]["fid_low"] == "" and rows[1]["precision"] == "", "unknown: an empty cell"
    assert float(rows[1]["fid"]) == 60.0
    assert float(rows[2]["kid_mean_low"]) == FLOOR["intervals"]["kid_mean"]["low"]


def test_old_metrics_files_give_na_cells_and_no_tie_claim(tmp_path):
    """A metrics file from before intervals: read, ranked and shown, with "n/a" where a score is
    unknown and no claim that it ties or does not tie with anyone."""
    results = write_first_seeds(tmp_path, {"old": old_result(60.0), "new": result(61.0, 0.5)})
    board = build_leaderboard(results, "kid_mean")
    json.dumps(board)  # still JSON
    assert board["indistinguishable"] == [], "new's interval would overlap old's value"
    assert board["ties"]["without_interval"] == ["old"]
    assert board["models"]["old"]["indistinguishable_from_floor"] is None
    cells = dict(leaderboard_rows(board)[0][1].items())
    assert cells["model"] == "old"
    assert cells["precision"] == cells["FID_inf"] == "n/a"
    assert cells["FID"] == "60" and cells["KID"] == "300 ± 20", "the old file's figures"
    floor = leaderboard_rows(board)[-1][1]
    assert floor["precision"] == "n/a", "the first model's (old) floor has no precision"
    notes = tie_notes(board)
    (note,) = [n for n in notes if "No interval of `kid_mean` for old" in n]
    assert f"`dvc repro -f {stage_instance('evaluate', 'old', 0)}`" in note, note
    assert not any("do not overlap" in n or "Not distinguishable" in n for n in notes)


@pytest.mark.parametrize("rank_by", ["fid", "kid_mean"])
def test_all_old_files_rank_without_claims(rank_by):
    board = build_leaderboard({"a": old_result(30.0), "b": old_result(31.0)}, rank_by)
    assert board["ranking"] == ["a", "b"] and board["indistinguishable"] == []
    markdown = leaderboard_markdown(board)
    assert "No interval of" in markdown and "a and b" in markdown
    assert "do not overlap" not in markdown


@pytest.mark.parametrize("stored", ["absent", "null"])
def test_rank_by_fid_inf_without_one_says_how_to_get_it(tmp_path, stored):
    """An old metrics file (no fid_inf key) and one evaluated with fewer than two usable sample
    counts (fid_inf: null) are refused naming the model, the key and the fix, not a KeyError
    or a TypeError."""
    without = result(31.0, 0.5)
    if stored == "absent":
        without = old_result(31.0)
    else:
        without["fid_inf"] = None
    results = write_first_seeds(tmp_path, {"a": result(30.0, 0.5), "b": without})
    with pytest.raises(StageInputError) as refused:
        build_leaderboard(results, "fid_inf", metrics_dir=tmp_path)
    message = str(refused.value)
    assert "of b " in message and "`fid_inf`" in message, message
    assert str(metrics_file(tmp_path, run_name("b", 0))) in message, message
    assert "evaluate.sample_counts with two or more counts" in message, message
    assert f"dvc repro -f {stage_instance('evaluate', 'b', 0)}`" in message, message
    assert build_leaderboard(results, "fid")["ranking"] == ["a", "b"], "other scores still rank"


def test_a_missing_rank_by_score_is_named_without_the_fid_inf_hint():
    with pytest.raises(StageInputError) as refused:
        build_leaderboard({"a": result(30.0, 0.5), "b": old_result(31.0)}, "precision")
    message = str(refused.value)
    assert "has no `precision`" in message, message
    assert f"`dvc repro -f {stage_instance('evaluate', 'b', None)}`" in message, message
    assert "sample_counts" not in message


def test_which_direction_is_better_follows_metric_keys():
    """The sentence above the table lists every score column once, on the side that
    metric_keys.HIGHER_IS_BETTER puts it."""
    lower, higher = better_sentence().split("; ")
    assert lower.endswith(": lower is better") and higher.endswith(": higher is better.")
    for key, column in SCORE_COLUMNS:
        side = higher if key in HIGHER_IS_BETTER else lower
        other = lower if side is higher else higher
        assert re.search(rf"\b{re.escape(column)}\b", side), (column, side)
        assert not re.search(rf"\b{re.escape(column)}(?![_\w])", other), (column, other)
    board = build_leaderboard({"a": result(30.0, 0.5)}, "fid")
    assert better_sentence() in leaderboard_markdown(board)


def test_a_score_without_interval_points_to_the_rankable_ones_with_one():
    board = build_leaderboard({"a": result(30.0, 0.5), "b": result(31.0, 0.5)}, "isc_mean")
    (note,) = tie_notes(board)
    wanted = [key for key in RANKABLE if key in INTERVAL_SCORES]
    assert wanted and all(f"`{key}`" in note for key in wanted), note
    assert "`isc_mean` or" not in note and "`fid_inf`" not in note


def test_a_malformed_bootstrap_level_says_intervals_without_a_level():
    records = {"a": result(30.0, 0.3), "b": result(40.0, 0.3)}
    records["b"]["comparability"]["bootstrap"]["level"] = [0.95]
    board = build_leaderboard(records, "kid_mean")
    assert board["ties"]["level"] is None
    (sentence,) = [n for n in tie_notes(board) if "Not distinguishable at" in n]
    assert "their intervals of `kid_mean`" in sentence and "%" not in sentence
