"""evaluate@<model>-<seed>: FID / IS / KID, precision / recall / density / coverage, their
bootstrap intervals and FID against the sample count (FID_inf) of the sampling generator
against the test split, beside the real-vs-real floor (train split vs test split) and,
optionally, the same network untrained, all measured with the same extractor; plus what
decides the numbers."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from omegaconf import DictConfig

from genlab import credentials
from genlab.data.store import read_split
from genlab.evaluation.fidelity import compute_fidelity
from genlab.evaluation.memorization import check_memorization
from genlab.evaluation.per_class import evaluate_per_class
from genlab.evaluation.settings import (
    evaluation_options,
    extractor_objective,
    real_sample,
    sample_images,
    sample_labels,
)
from genlab.io import write_json
from genlab.layout import RunLayout, metrics_file
from genlab.metric_keys import (
    CLASS_ACCURACY,
    CLASS_SUMMARY_SCORES,
    FID_INF,
    INTRA_CLASS_KID,
    MANIFOLD_SCORES,
    PER_CLASS,
    REPORTED_SCORES,
    WORST_CLASS,
    flat_scores,
)
from genlab.models.generator_file import build_untrained, load_generator
from genlab.provenance import RUN_KEYS
from genlab.stages.entry import stage_main
from genlab.tracking.wandb_setup import log_to_existing_run

# Config sections this stage builds objects from (genlab.code_deps follows their _target_s):
# the generator is rebuilt from the network named in generator.safetensors, which must be on
# genlab.models.generator_file's allow-list (nothing from the file reaches instantiate).
INSTANTIATES = ("model",)


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_evaluate, cfg, INSTANTIATES)


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    layout = RunLayout.at(cfg.paths.run_dir)
    generator, record = load_generator(layout.generator, model=cfg.model.name, seed=cfg.seed)
    credentials.signing_identity()  # an unusable signing identity fails before any work
    options = dict(  # before any work: a missing extractor weights file fails here
        **evaluation_options(cfg),
        verbose=cfg.metrics.extractor == "inception",  # minutes on a CPU: show progress
    )
    train, test = read_split(cfg.data.dir, "train"), read_split(cfg.data.dir, "test")
    samples = sample_images(
        generator,
        cfg.evaluate.num_samples,
        cfg.evaluate.sample_seed,
        cfg.evaluate.batch_size,
        model=cfg.model.name,
        training_seed=cfg.seed,
    )
    objective = extractor_objective(cfg)
    scores = score_against_test(cfg, samples, train, test, record, options, objective)
    provenance = {key: record[key] for key in RUN_KEYS} | {"model": cfg.model.name}
    memorization, measured = check_memorization(
        cfg, samples, train, test, options["weights_path"], provenance
    )
    per_class, class_summary = evaluate_per_class(
        cfg,
        generator,
        record,
        samples,
        sample_labels(generator, cfg.evaluate.num_samples),
        test,
        measured.flagged,
        measured.sample_features,
        measured.test_features,
        provenance,
    )
    result = {
        **evaluation_record(cfg, record, scores, memorization, objective),
        **class_summary,
        PER_CLASS: per_class,
    }
    write_json(metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name), result)
    log_to_existing_run(
        cfg.logger, layout.root, record["run_id"], wandb_summary(result), job_type="evaluate"
    )
    print(headline(cfg, result))
    return result


def score_against_test(
    cfg: DictConfig,
    samples,
    train,
    test,
    record: dict[str, Any],
    options: dict[str, Any],
    extractor_trained_for: str,
) -> dict[str, dict[str, Any] | None]:
    """The model's samples, as many real train images (the floor) and, optionally, the same
    network untrained, each against the test split with the same extractor. The untrained
    network is a sanity reference: it gets no intervals and no sample-count curve."""
    scores: dict[str, dict[str, Any] | None] = {
        "model": compute_fidelity(samples, test.images, **options),
        "floor": compute_fidelity(
            real_sample(train.images, cfg.evaluate.num_samples, cfg.evaluate.sample_seed),
            test.images,
            **options,
        ),
        "untrained": None,
    }
    point_only = {**options, "bootstrap_rounds": 0, "sample_counts": ()}
    if cfg.evaluate.untrained_baseline:
        untrained_samples = sample_images(
            build_untrained(record["generator_config"], cfg.seed),
            cfg.evaluate.num_samples,
            cfg.evaluate.sample_seed,
            cfg.evaluate.batch_size,
            model=cfg.model.name,
        )
        scores["untrained"] = compute_fidelity(untrained_samples, test.images, **point_only)
    if extractor_trained_for.startswith("self-supervised"):
        # Rotation classes say nothing about sample quality: no Inception-style score.
        for scored in filter(None, scores.values()):
            scored.update(isc_mean=None, isc_std=None)
    return scores


def evaluation_record(
    cfg: DictConfig,
    record: dict[str, Any],
    scores: dict[str, dict[str, Any] | None],
    memorization: dict[str, Any],
    extractor_trained_for: str,
) -> dict[str, Any]:
    """metrics/<run name>.json: the scores, what they were measured against, and the run."""
    model, floor, untrained = scores["model"], scores["floor"], scores["untrained"]
    return {
        "model": cfg.model.name,
        "seed": cfg.seed,  # the training seed: the leaderboard's mean ± std over seeds
        "run_name": cfg.paths.run_name,
        "run_id": record["run_id"],
        "dvc_experiment": record["train"].get("links", {}).get("dvc_experiment"),
        "extractor": cfg.metrics.extractor,
        "extractor_objective": extractor_trained_for,
        "weights_sha256": model.get("weights_sha256"),
        **_scores(model),
        "intervals": model["intervals"],
        "floor": {**_scores(floor), "intervals": floor["intervals"]},
        "untrained": untrained and _scores(untrained),
        "sample_counts": (
            {"model": model["curve"], "floor": floor["curve"]} if model["curve"] else None
        ),
        "comparability": comparability(cfg, model, floor),
        "memorization": memorization,
        "counts": {
            "samples": model["num_samples"],
            "reference": model["num_reference"],
            "floor_train": floor["num_samples"],
            "floor_test": floor["num_reference"],
            "kid_subset_size": model["kid_subset_size"],
            "floor_kid_subset_size": floor["kid_subset_size"],
        },
        "splits": {
            "model": "samples vs test",
            "floor": "train vs test",
            "untrained": "samples of the same network untrained (seed) vs test",
        },
        "sample_seed": cfg.evaluate.sample_seed,
        "train_steps": record["train"]["steps"],
        "train_images_per_s": record["train"]["images_per_s"],
        "train_wall_time_s": record["train"]["wall_time_s"],
    }


def _scores(scored: dict[str, Any]) -> dict[str, Any]:
    return {key: scored[key] for key in REPORTED_SCORES}


def comparability(cfg: DictConfig, model: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides the numbers: two metrics files agree on all of it, or their
    scores are not comparable."""
    return {
        "extractor": model["extractor"],
        "feature_extractor": model["feature_extractor"],
        "weights_sha256": model["weights_sha256"],
        "weights_known": model["weights_known"],
        "input": model["input"],
        "reference": {"split": "test", "size": model["num_reference"]},
        "floor_samples": {
            "split": "train",
            "size": floor["num_samples"],
            "drawn_with_seed": cfg.evaluate.sample_seed,
        },
        "samples": model["num_samples"],
        "sample_seed": cfg.evaluate.sample_seed,
        "kid": {"subset_size": model["kid_subset_size"], "subsets": model["kid_subsets"]},
        "nearest_k": model["nearest_k"],
        "bootstrap": model["bootstrap"],
        "sample_counts": model["curve"]
        and {key: model["curve"][key] for key in ("counts", "draws", "seed", "skipped")},
        "versions": {
            package: version(package) for package in ("torch", "torch-fidelity", "torchvision")
        },
    }


def wandb_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the training's W&B run gets: the scores, their interval bounds (eval/fid_low,
    eval/fid_high, ...), the floor's, the memorization shares. A score that was not measured
    (no nearest_k, no bootstrap, no sample counts, an old record) is left out, not logged as
    null."""
    floor = result.get("floor") or {}
    summary = {
        **{f"eval/{key}": value for key, value in _flat_scores(result).items()},
        **{f"eval/floor_{key}": value for key, value in _flat_scores(floor).items()},
    }
    memorization = result.get("memorization") or {}
    for space in ("feature", "pixel"):
        fraction = (memorization.get(space) or {}).get("fraction_below_threshold")
        if fraction is not None:
            summary[f"eval/memorization_{space}_fraction"] = fraction
    for key in CLASS_SUMMARY_SCORES:
        if result.get(key) is not None:
            summary[f"eval/{key}"] = result[key]
    for row in (result.get(PER_CLASS) or {}).get("rows") or []:
        for key in ("kid_mean", "accuracy"):
            if row.get(key) is not None:
                summary[f"eval/class_{row['index']}_{key}"] = row[key]
    return summary


def _flat_scores(scored: dict[str, Any]) -> dict[str, float]:
    """The scores of one set (model or floor) and their interval bounds as flat keys
    (fid, fid_low, fid_high, ...), the measured ones only."""
    return {key: value for key, value in flat_scores(scored).items() if value is not None}


def headline(cfg: DictConfig, result: dict[str, Any]) -> str:
    """A few lines for the terminal: FID and KID with their intervals and FID_inf, the
    manifold scores, each beside the real-vs-real floor, and the memorization shares."""
    floor = result.get("floor") or {}
    facts = result.get("comparability") or {}
    level = (facts.get("bootstrap") or {}).get("level")
    reference = (facts.get("reference") or {}).get("size")
    samples = facts.get("samples")
    measured = f"{samples} samples vs {reference} test images" if samples and reference else None
    intervals = (
        f"[low, high]: {level:.0%} bootstrap interval" if level is not None else "no intervals"
    )
    lines = [
        f"evaluate {cfg.model.name} ({', '.join(filter(None, [cfg.metrics.extractor, measured]))};"
        f" {intervals}; floor: real train vs test)",
        _score_line("FID", "fid", result, floor, with_fid_inf=True),
        _score_line("KID", "kid_mean", result, floor),
    ]
    # precision / recall, then density / coverage: two short lines
    for pair in (MANIFOLD_SCORES[:2], MANIFOLD_SCORES[2:]):
        scored = [
            f"{key} {_number(result[key])} (floor {_number(floor.get(key))})"
            for key in pair
            if result.get(key) is not None
        ]
        if scored:
            lines.append("  " + ", ".join(scored))
    if result.get("isc_mean") is not None:
        lines.append(f"  IS {_number(result['isc_mean'])} (floor {_number(floor.get('isc_mean'))})")
    memorization = result.get("memorization")
    if memorization:
        lines.append(
            f"  samples closer to a training image than {memorization['quantile']:.0%} of real "
            f"test images: {memorization['feature']['fraction_below_threshold']:.1%} "
            f"(features), {memorization['pixel']['fraction_below_threshold']:.1%} (pixels)"
        )
    per_class = result.get(PER_CLASS)
    if per_class:
        accuracy = result.get(CLASS_ACCURACY)
        lines.append(
            f"  per class ({len(per_class['rows'])} classes): intra-class KID "
            f"{_number(result.get(INTRA_CLASS_KID))}"
            + ("" if accuracy is None else f", classifier accuracy on samples {accuracy:.1%}")
            + f", worst class {per_class.get(WORST_CLASS)}"
        )
    return "\n".join(lines)


def _score_line(
    label: str, key: str, result: dict[str, Any], floor: dict[str, Any], with_fid_inf: bool = False
) -> str:
    """One score with its interval (and FID_inf), then the floor's: e.g.
    ``FID 138 [122, 155], FID_inf 137  (floor 3.65 [0, 9.38], FID_inf 1.94)``."""

    def scored(record: dict[str, Any]) -> str:
        text = _number(record.get(key))
        interval = (record.get("intervals") or {}).get(key)
        if interval:
            text += f" [{_number(interval['low'])}, {_number(interval['high'])}]"
        if with_fid_inf and record.get(FID_INF) is not None:
            text += f", FID_inf {_number(record[FID_INF])}"
        return text

    return f"  {label} {scored(result)}  (floor {scored(floor)})"


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"
