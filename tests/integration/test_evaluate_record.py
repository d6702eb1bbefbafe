"""The evaluate stage on a tiny trained model: metrics/<run name>.json holds precision / recall /
density / coverage, bootstrap intervals, FID / KID against the sample count with FID_inf and
what decides the numbers; the headline, the W&B summary, export.json and the model card show
them, and a record without intervals or curves (bootstrap.rounds=0, sample_counts=[], or a
file written before they existed) still goes through all of them."""

from __future__ import annotations

import hashlib
import json
import math
from importlib.metadata import version
from pathlib import Path

import pytest

from genlab.evaluation.classifier_training import load_classifier
from genlab.export.model_card import NOT_RECORDED, render_model_card
from genlab.layout import metrics_file, run_name
from genlab.metric_keys import (
    CLASS_ACCURACY,
    FID_INF,
    FIDELITY_SCORES,
    INTERVAL_SCORES,
    INTRA_CLASS_KID,
    MANIFOLD_SCORES,
    PER_CLASS,
)
from genlab.stages import evaluate
from genlab.stages.export import run_export
from genlab.stages.fetch import run_fetch
from genlab.stages.train import run_train
from genlab.stages.train_classifier import run_train_classifier

from ..conftest import compose_config_dir, pipeline_paths_under, tiny_model_overrides

pytestmark = pytest.mark.timeout(600)

NUM_SAMPLES = 120
COUNTS = [40, 80, 120, 500]  # 500 is above the sample count: skipped, and listed as skipped
ROUNDS = 20
# where each score can lie; an interval shifted by the bootstrap bias is clipped to it
BOUNDS = {
    "fid": (0.0, math.inf),
    "kid_mean": (-math.inf, math.inf),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "density": (0.0, math.inf),
    "coverage": (0.0, 1.0),
}


def config(root: Path, *extra: str):
    return compose_config_dir(
        *pipeline_paths_under(root),
        "metrics.classifier.epochs=1",
        "logger=csv",
        "data.batch_size=16",
        "train.steps=20",
        f"evaluate.num_samples={NUM_SAMPLES}",
        "evaluate.kid_subset_size=40",
        "evaluate.kid_subsets=10",
        f"evaluate.bootstrap.rounds={ROUNDS}",
        f"evaluate.sample_counts=[{','.join(map(str, COUNTS))}]",
        "evaluate.sample_count_draws=2",
        "evaluate.memorization.pairs=4",
        "export.grid_images=4",
        *tiny_model_overrides("dcgan"),
        *extra,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """digits, its domain classifier and a tiny DCGAN trained for a few steps."""
    root = tmp_path_factory.mktemp("evaluate-record")
    cfg = config(root)
    run_fetch(cfg)
    run_train_classifier(cfg)
    run_train(cfg)
    return root


@pytest.fixture(scope="module")
def evaluated(trained):
    """The evaluate stage as its script runs it (config validated first), and what it printed."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = evaluate.main(config(trained))
    return result, printed.getvalue()


def test_record_holds_intervals_curves_and_what_decides_the_numbers(trained, evaluated):
    result, _ = evaluated
    cfg = config(trained)
    written = json.loads(metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name).read_text())
    assert written["fid"] == result["fid"] and written["intervals"] == result["intervals"]
    # the run it scored: one model trained from one seed, under the run's name
    assert (written["model"], written["seed"], written["run_name"]) == (
        "dcgan",
        cfg.seed,
        run_name("dcgan", cfg.seed),
    )

    for scored in (written, written["floor"]):
        for key in (*FIDELITY_SCORES, *MANIFOLD_SCORES, FID_INF):
            assert scored[key] is not None and math.isfinite(scored[key]), key
        assert set(scored["intervals"]) == set(INTERVAL_SCORES)
        for key, interval in scored["intervals"].items():
            bottom, top = BOUNDS[key]
            assert bottom <= interval["low"] <= interval["high"] <= top, (key, interval)
            assert interval["std"] >= 0, key
            # the interval is moved by the bias estimate (replicates' mean - score): it holds the
            # score unless the replicates' mean falls outside their own percentile interval,
            # which takes a heavy tail; fixed seeds make this run's replicates the same each time
            assert interval["low"] <= scored[key] <= interval["high"], (key, interval)
    assert written["untrained"] is not None and "intervals" not in written["untrained"]

    model_curve, floor_curve = written["sample_counts"]["model"], written["sample_counts"]["floor"]
    assert model_curve["counts"] == [40, 80, 120] and model_curve["skipped"] == [500]
    # the floor scores as many real train images as there are samples: the same counts
    floor_size = written["counts"]["floor_train"]
    assert floor_size == NUM_SAMPLES
    assert floor_curve["counts"] == [40, 80, 120] and floor_curve["skipped"] == [500]
    for curve in (model_curve, floor_curve):
        assert len(curve["fid"]) == len(curve["kid_mean"]) == len(curve["counts"])
        assert curve["draws"] == 2 and math.isfinite(curve["fid_inf"])
        assert curve["fid"][-1] == pytest.approx(
            written["fid"] if curve is model_curve else written["floor"]["fid"], rel=1e-4
        )
    assert written[FID_INF] == model_curve["fid_inf"]
    assert written["floor"][FID_INF] == floor_curve["fid_inf"]

    # real train images against real test images beat a network that was never trained
    for key in MANIFOLD_SCORES:
        assert written["floor"][key] > written["untrained"][key], key

    facts = written["comparability"]
    assert facts["versions"] == {
        name: version(name) for name in ("torch", "torch-fidelity", "torchvision")
    }
    classifier = Path(cfg.paths.classifier)
    assert facts["weights_sha256"] == hashlib.sha256(classifier.read_bytes()).hexdigest()
    assert written["weights_sha256"] == facts["weights_sha256"]
    assert facts["input"]["size"] == load_classifier(str(classifier)).image_size
    assert facts["input"]["size"] == cfg.data.image_size
    assert facts["reference"] == {"split": "test", "size": written["counts"]["reference"]}
    assert facts["floor_samples"] == {
        "split": "train",
        "size": floor_size,
        "drawn_with_seed": cfg.evaluate.sample_seed,
    }
    assert facts["samples"] == NUM_SAMPLES and facts["nearest_k"] == cfg.evaluate.nearest_k
    assert facts["bootstrap"]["rounds"] == ROUNDS and facts["bootstrap"]["level"] == 0.95
    assert facts["sample_counts"] == {
        "counts": [40, 80, 120],
        "draws": 2,
        "seed": cfg.evaluate.bootstrap.seed,
        "skipped": [500],
    }


def test_headline_and_wandb_summary_carry_the_intervals(evaluated):
    result, printed = evaluated
    lines = printed.strip().splitlines()[-8:]  # the last: the per-class line
    assert lines[-1].startswith("  per class (10 classes): intra-class KID")
    assert lines[0].startswith("evaluate dcgan (classifier") and "95%" in lines[0]

    def bracket(record, key):
        interval = record["intervals"][key]
        return f"{record[key]:.4g} [{interval['low']:.4g}, {interval['high']:.4g}]"

    floor = result["floor"]
    fid = f"FID {bracket(result, 'fid')}, FID_inf {result[FID_INF]:.4g}"
    assert fid in printed and f"floor {bracket(floor, 'fid')}" in printed
    assert f"KID {bracket(result, 'kid_mean')}" in printed
    for key in MANIFOLD_SCORES:
        assert f"{key} {result[key]:.4g} (floor {floor[key]:.4g})" in printed, key
    assert all(len(line) <= 130 for line in lines), lines

    summary = evaluate.wandb_summary(result)
    for key in INTERVAL_SCORES:
        for end in ("low", "high"):
            assert summary[f"eval/{key}_{end}"] == result["intervals"][key][end]
            assert summary[f"eval/floor_{key}_{end}"] == floor["intervals"][key][end]
    for key in (*MANIFOLD_SCORES, FID_INF):
        assert summary[f"eval/{key}"] == result[key]
        assert summary[f"eval/floor_{key}"] == floor[key]
    assert all(value is not None for value in summary.values())


def test_no_bootstrap_and_no_sample_counts_write_nulls(trained, tmp_path):
    cfg = config(
        trained,
        f"paths.metrics_dir={tmp_path}",
        "evaluate.bootstrap.rounds=0",
        "evaluate.sample_counts=[]",
    )
    result = evaluate.main(cfg)
    written = json.loads(metrics_file(tmp_path, cfg.paths.run_name).read_text())
    assert written["intervals"] is None and written["floor"]["intervals"] is None
    assert written["sample_counts"] is None
    assert written[FID_INF] is None and written["floor"][FID_INF] is None
    assert written["comparability"]["bootstrap"] is None
    assert written["comparability"]["sample_counts"] is None
    for key in MANIFOLD_SCORES:  # still measured: they need neither
        assert 0 <= written[key] and 0 <= written["floor"][key]

    summary = evaluate.wandb_summary(result)
    assert not any(key.endswith(("_low", "_high")) for key in summary)
    assert "eval/fid_inf" not in summary and summary["eval/precision"] == written["precision"]
    assert "no intervals" in evaluate.headline(cfg, written)
    card = render_model_card({"model_name": "dcgan", "metrics": written})
    assert f"| FID | lower | {_fmt(written['fid'])} | {_fmt(written['floor']['fid'])} |" in card
    assert f"| FID_inf (FID at infinitely many samples) | lower | {NOT_RECORDED} |" in card
    assert "no bootstrap" in card and "no curve" in card


def _fmt(value: float) -> str:
    return f"{value:.5g}"


def _row(card: str, label: str) -> str:
    (row,) = [line for line in card.splitlines() if line.startswith(f"| {label} |")]
    return row


def test_model_card_and_export_record_of_a_new_and_an_old_record(trained, evaluated):
    result, _ = evaluated
    cfg = config(trained)
    summary = run_export(cfg)
    exported = json.loads((trained / "export/export.json").read_text())["metrics"]
    assert exported == summary["metrics"]
    for key in (*MANIFOLD_SCORES, FID_INF, "fid", "kid_mean"):
        assert exported[key] == result[key], key
    for key in INTERVAL_SCORES:
        assert exported[f"{key}_low"] == result["intervals"][key]["low"]
        assert exported[f"{key}_high"] == result["intervals"][key]["high"]

    card = (trained / "export/MODEL_CARD.md").read_text()
    floor = result["floor"]
    assert "| Metric | Better | Model [95% interval] | Real-vs-real floor [95% interval] |" in card
    for key, label in (("fid", "FID"), ("kid_mean", "KID (mean)"), ("precision", "Precision")):
        interval = result["intervals"][key]
        cell = f"{_fmt(result[key])} [{_fmt(interval['low'])}, {_fmt(interval['high'])}]"
        assert cell in _row(card, label if key != "precision" else "Precision (fidelity)"), key
    for key, label in (("recall", "Recall (diversity)"), ("coverage", "Coverage (diversity)")):
        row = _row(card, label)
        assert f"| higher | {_fmt(result[key])} [" in row and f"| {_fmt(floor[key])} [" in row
    assert f"| {_fmt(result[FID_INF])} | {_fmt(floor[FID_INF])} |" in _row(
        card, "FID_inf (FID at infinitely many samples)"
    )
    decides = next(line for line in card.splitlines() if "What decides these numbers" in line)
    facts = result["comparability"]
    assert facts["weights_sha256"][:12] in decides
    assert f"reference test split, {facts['reference']['size']} images" in decides
    assert f"{NUM_SAMPLES} samples" in decides and f"bootstrap {ROUNDS} rounds at 95%" in decides
    assert f"torch-fidelity {version('torch-fidelity')}" in decides
    assert NOT_RECORDED not in _section(card, "Evaluation")

    # the same file as an earlier genlab wrote it: no manifold scores, intervals, curves
    old = {
        key: value
        for key, value in result.items()
        if key not in {*MANIFOLD_SCORES, FID_INF, "intervals", "sample_counts", "comparability"}
    }
    old["floor"] = {key: floor[key] for key in FIDELITY_SCORES}
    old_card = render_model_card({"model_name": "dcgan", "metrics": old})
    assert "| Metric | Better | Model | Real-vs-real floor |" in old_card
    assert f"| {_fmt(result['fid'])} | {_fmt(floor['fid'])} |" in _row(old_card, "FID")
    row = _row(old_card, "Precision (fidelity)")
    assert row.endswith(f"| {NOT_RECORDED} | {NOT_RECORDED} |")
    assert f"**What decides these numbers:** {NOT_RECORDED}" in old_card
    assert "[" not in _row(old_card, "KID (mean)")
    old_summary = evaluate.wandb_summary(old)
    assert old_summary["eval/fid"] == result["fid"] and "eval/precision" not in old_summary
    assert "no intervals" in evaluate.headline(cfg, old)


def _section(card: str, title: str) -> str:
    return card.split(f"## {title}\n\n", 1)[1].split("\n## ", 1)[0]


# -- per-class evaluation ------------------------------------------------------------------------


def test_unconditional_run_gets_per_class_rows_by_predicted_class(trained, evaluated):
    """The DCGAN above is unconditional: its samples are grouped by the classifier's predicted
    class, with no accuracy, and its class grid holds a row per class."""
    result, printed = evaluated
    cfg = config(trained)
    written = json.loads(metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name).read_text())
    section = written[PER_CLASS]
    assert section["conditional"] is False
    rows = section["rows"]
    assert [row["class"] for row in rows] == [str(d) for d in range(10)]
    assert sum(row["samples"] for row in rows) == NUM_SAMPLES
    assert all(row["accuracy"] is None for row in rows)
    assert written[CLASS_ACCURACY] is None
    kids = [row["kid_mean"] for row in rows if row["kid_mean"] is not None]
    assert kids and written[INTRA_CLASS_KID] == pytest.approx(sum(kids) / len(kids))
    assert section["worst_class"] in {row["class"] for row in rows}
    _check_class_grid(cfg, section, rows=10)
    assert "per class (10 classes)" in printed


def _check_class_grid(cfg, section, rows: int) -> None:
    from PIL import Image

    from genlab.layout import class_grid
    from genlab.provenance import read_provenance

    grid = class_grid(cfg.paths.metrics_dir, cfg.paths.run_name)
    assert section["grid"] == grid.name
    with Image.open(grid) as image:
        tile = cfg.data.image_size
        assert image.height == rows * (tile + 2) + 2  # make_grid's padding of 2
        assert image.width == 8 * (tile + 2) + 2
    assert read_provenance(grid)["machine_generated"] == "true"


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """A tiny class-conditional DCGAN, trained a few steps and evaluated: its config and
    metrics file."""
    root = tmp_path_factory.mktemp("evaluate-conditional")
    extra = ("model.conditioning=class", "evaluate.bootstrap.rounds=0", "evaluate.sample_counts=[]")
    cfg = config(root, *extra)
    run_fetch(cfg)
    run_train_classifier(cfg)
    run_train(cfg)
    result = evaluate.main(config(root, *extra))
    return cfg, result


def test_conditional_run_scores_every_class_and_draws_the_class_grid(conditional):
    cfg, result = conditional
    written = json.loads(metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name).read_text())
    assert written[PER_CLASS] == json.loads(json.dumps(result[PER_CLASS]))
    section = written[PER_CLASS]
    assert section["conditional"] is True
    rows = section["rows"]
    assert len(rows) == 10 and [row["index"] for row in rows] == list(range(10))
    # balanced labels: sample i drawn for class i % 10
    assert [row["samples"] for row in rows] == [NUM_SAMPLES // 10] * 10
    assert sum(row["samples"] for row in rows) == NUM_SAMPLES
    assert sum(row["test_images"] for row in rows) == written["counts"]["reference"]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["memorized_fraction"] <= 1.0
        assert math.isfinite(row["kid_mean"]) and row["kid_std"] >= 0
    assert written[CLASS_ACCURACY] == pytest.approx(sum(r["accuracy"] for r in rows) / 10)
    assert written[INTRA_CLASS_KID] == pytest.approx(sum(r["kid_mean"] for r in rows) / 10)
    assert section["worst_class"] == min(rows, key=lambda r: (r["accuracy"], r["class"]))["class"]
    _check_class_grid(cfg, section, rows=10)
    summary = evaluate.wandb_summary(written)
    assert summary["eval/class_accuracy"] == written[CLASS_ACCURACY]
    assert summary["eval/class_3_kid_mean"] == rows[3]["kid_mean"]
    print(
        "per-class (conditional dcgan, few steps):",
        json.dumps({r["class"]: [r["accuracy"], round(r["kid_mean"], 3)] for r in rows}),
        written[CLASS_ACCURACY],
        written[INTRA_CLASS_KID],
    )
