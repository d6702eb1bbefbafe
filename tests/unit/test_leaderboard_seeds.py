"""The leaderboard over seeds, through the real compare stage on metrics files written here (one
per model and seed, named by layout.run_name): mean ± sample std over seeds beside the first
seed's single-run numbers, the ranking by the mean, the sentence on overlapping seed ranges
(min..max) both ways, one seed (n=1, no std), and a missing run's file refused by name."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab.errors import StageInputError
from genlab.io import write_json
from genlab.layout import metrics_file, run_name, stage_instance
from genlab.metric_keys import RANKABLE, SEED_AGGREGATES
from genlab.stages.compare import run_compare

from .test_leaderboard_intervals import result, table

# KID per (model, seed): a's seed 0 beats b's seed 0, but b's mean is lower, and the ranges
# [120, 260] and [140, 200] overlap
OVERLAPPING = {"a": {0: 120.0, 1: 260.0, 2: 200.0}, "b": {0: 150.0, 1: 140.0, 2: 200.0}}
# the same models with ranges [100, 130] and [300, 360]: apart
APART = {"a": {0: 100.0, 1: 130.0, 2: 110.0}, "b": {0: 300.0, 1: 360.0, 2: 330.0}}


def write_runs(metrics: Path, kids: dict[str, dict[int, float]], skip: tuple = ()) -> None:
    """metrics/<model>-seed<k>.json as evaluate writes them (KID = 5 x FID)."""
    for model, by_seed in kids.items():
        for seed, kid in by_seed.items():
            if (model, seed) in skip:
                continue
            record = result(kid / 5, 0.01, run_id=f"{model}{seed}")
            record.update(model=model, seed=seed, run_name=run_name(model, seed))
            write_json(metrics_file(metrics, run_name(model, seed)), record)


def compare(tmp_path: Path, models=None, seeds=None, params: dict | None = None) -> dict:
    """The compare stage with a config like conf/config.yaml's (null: from params.yaml)."""
    params_file = tmp_path / "params.yaml"
    if params is not None:
        params_file.write_text(json.dumps(params))  # JSON is YAML
    cfg = OmegaConf.create(
        {
            "paths": {"metrics_dir": str(tmp_path / "metrics")},
            "compare": {
                "models": models,
                "seeds": seeds,
                "params_file": str(params_file),
                "out_dir": str(tmp_path / "leaderboard"),
                "rank_by": "kid_mean",
            },
        }
    )
    return run_compare(cfg)


def test_mean_and_std_over_seeds_beside_the_first_seeds_numbers(tmp_path):
    write_runs(tmp_path / "metrics", OVERLAPPING)
    board = compare(tmp_path, ["a", "b"], [0, 1, 2])
    assert board["ranking"] == ["b", "a"], "ranked by the mean over seeds, not seed 0"
    for model, kids in OVERLAPPING.items():
        row = board["models"][model]
        assert row["kid_mean"] == kids[0] and row["seed"] == 0, "the single run: seed 0"
        assert row["run_name"] == run_name(model, 0) and row["run_id"] == f"{model}0"
        seeds = row["over_seeds"]
        assert seeds["n"] == 3 and seeds["seeds"] == [0, 1, 2]
        assert [r["kid_mean"] for r in seeds["runs"]] == list(kids.values())
        assert [r["run_name"] for r in seeds["runs"]] == [run_name(model, s) for s in kids]
        kid = seeds["kid_mean"]
        assert kid["mean"] == pytest.approx(statistics.fmean(kids.values()))
        assert kid["std"] == pytest.approx(statistics.stdev(kids.values()))  # sample std
        assert (kid["min"], kid["max"], kid["n"]) == (min(kids.values()), max(kids.values()), 3)
        assert set(seeds) >= set(RANKABLE)
    on_disk = json.loads((tmp_path / "leaderboard" / "leaderboard.json").read_text())
    assert on_disk["models"]["a"]["over_seeds"]["fid"]["mean"] == pytest.approx(
        statistics.fmean(k / 5 for k in OVERLAPPING["a"].values())
    )
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    seeds_rows = {row["model"]: row for row in table(markdown, 1)}
    kids = OVERLAPPING["a"].values()
    wanted = f"{statistics.fmean(kids):.4g} ± {statistics.stdev(kids):.2g} (n=3)"
    assert seeds_rows["a"]["KID x 1"] == wanted
    assert seeds_rows["a"]["per seed (KID x 1)"] == "120 / 260 / 200"
    assert table(markdown, 0)[1]["KID x 1"].startswith("120 ["), "single run beside"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard/scores.csv").read_text())))
    assert float(rows[1]["kid_mean_seeds_mean"]) == pytest.approx(statistics.fmean(kids))
    assert float(rows[1]["kid_mean"]) == 120.0, "the single-run column as before"
    assert all(f"fid_seeds_{agg}" in rows[0] for agg in SEED_AGGREGATES)
    assert rows[2]["kid_mean_seeds_mean"] == "", "the floor has no seeds"


@pytest.mark.parametrize(
    ("kids", "pairs", "shown"),
    [(OVERLAPPING, [["b", "a"]], ["=1", "=1"]), (APART, [], ["1", "2"])],
    ids=["overlap", "apart"],
)
def test_the_ranking_says_whether_seed_ranges_overlap(tmp_path, kids, pairs, shown):
    write_runs(tmp_path / "metrics", kids)
    board = compare(tmp_path, ["a", "b"], [0, 1, 2])
    assert board["seed_ties"]["pairs"] == pairs
    assert board["seed_ties"]["rule"] == "min..max over seeds"
    assert [board["models"][m]["seed_shown_rank"] for m in board["ranking"]] == shown
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert [row["rank"] for row in table(markdown, 1)] == shown
    if pairs:
        assert "Seed ranges overlap (min..max over seeds of `kid_mean`" in markdown
        assert "training noise: b and a." in markdown
        assert "do not overlap: their order held" not in markdown
    else:
        assert "seed ranges (min..max over seeds) of `kid_mean` of a and b do not overlap" in (
            markdown
        )
        assert "Seed ranges overlap" not in markdown


def test_one_seed_shows_n_1_and_no_std_and_makes_no_claim(tmp_path):
    write_runs(tmp_path / "metrics", {m: {0: kids[0]} for m, kids in OVERLAPPING.items()})
    board = compare(tmp_path, params={"pipeline": {"models": ["a", "b"], "seeds": [0]}})
    assert board["ranking"] == ["a", "b"], "by the single runs"
    kid = board["models"]["a"]["over_seeds"]["kid_mean"]
    assert kid["n"] == 1 and kid["std"] is None and kid["mean"] == 120.0
    assert board["seed_ties"] == {
        "score": "kid_mean",
        "rule": "min..max over seeds",
        "pairs": [],
        "single_seed": ["a", "b"],
    }
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert table(markdown, 1)[0]["KID x 1"] == "120 (n=1)"
    assert "±" not in "".join(row["KID x 1"] for row in table(markdown, 1))
    assert "One seed per model (n=1)" in markdown
    assert "their order held on every seed" not in markdown and "Seed ranges" not in markdown


def test_seeds_null_reads_params_yaml(tmp_path):
    write_runs(tmp_path / "metrics", APART)
    params = {"pipeline": {"models": ["b", "a"], "seeds": [2, 0]}}
    board = compare(tmp_path, params=params)
    row = board["models"]["a"]
    assert row["seed"] == 2 and row["kid_mean"] == APART["a"][2], "the first listed seed"
    assert row["over_seeds"]["seeds"] == [2, 0]


def test_a_missing_seeds_file_is_named_with_the_stage_to_run(tmp_path):
    write_runs(tmp_path / "metrics", OVERLAPPING, skip=(("b", 2),))
    with pytest.raises(StageInputError) as refused:
        compare(tmp_path, ["a", "b"], [0, 1, 2])
    message = str(refused.value)
    assert str(metrics_file(tmp_path / "metrics", run_name("b", 2))) in message, message
    assert f"`dvc repro {stage_instance('evaluate', 'b', 2)}`" in message, message
    assert "a-seed" not in message, message
    assert not (tmp_path / "leaderboard").exists()


@pytest.mark.parametrize(
    ("seed", "shown"), [(0, "0"), (True, "true"), (1.0, "1.0"), ("1", '"1"'), (None, "missing")]
)
def test_a_file_holding_another_seeds_run_is_refused(tmp_path, seed, shown):
    """Its ``seed`` must be the very integer of the run it is named after: not another seed,
    not ``true`` or ``1.0`` (equal to 1 in Python), not a string, not missing."""
    write_runs(tmp_path / "metrics", APART)
    path = metrics_file(tmp_path / "metrics", run_name("a", 1))
    record = json.loads(path.read_text())
    if seed is None:
        del record["seed"]
    else:
        record["seed"] = seed
    write_json(path, record)
    with pytest.raises(StageInputError) as refused:
        compare(tmp_path, ["a", "b"], [0, 1])
    message = str(refused.value)
    assert f"`seed` is {shown}, not the run {run_name('a', 1)}" in message, message
    assert f"`dvc repro -f {stage_instance('evaluate', 'a', 1)}`" in message, message
