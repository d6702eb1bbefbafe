"""evaluate@<model>: FID / IS / KID of the sampling generator against the test split, beside
the real-vs-real floor (train split vs test split) and, optionally, the same network untrained,
all measured with the same extractor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from genlab.data.store import read_split
from genlab.evaluation.fidelity import compute_fidelity
from genlab.evaluation.memorization import check_memorization
from genlab.evaluation.settings import extractor_objective, fidelity_options, sample_images
from genlab.io import write_json
from genlab.layout import RunLayout, metrics_file
from genlab.metric_keys import FIDELITY_SCORES
from genlab.models.generator_file import build_untrained, load_generator
from genlab.provenance import RUN_KEYS
from genlab.stages.entry import stage_main
from genlab.tracking.wandb_setup import log_to_existing_run

# Config sections this stage builds objects from (genlab.code_deps follows their _target_s):
# the generator is rebuilt from the model config stored in generator.pt.
INSTANTIATES = ("model",)


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_evaluate, cfg)


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(cfg.paths.run_dir)
    generator, record = load_generator(RunLayout.at(run_dir).generator)
    common = dict(  # before any work: a missing extractor weights file fails here
        **fidelity_options(cfg),
        verbose=cfg.metrics.extractor == "inception",  # minutes on a CPU: show progress
    )
    train, test = read_split(cfg.data.dir, "train"), read_split(cfg.data.dir, "test")
    samples = sample_images(
        generator, cfg.evaluate.num_samples, cfg.evaluate.sample_seed, cfg.evaluate.batch_size
    )
    model_scores = compute_fidelity(samples, test.images, **common)
    floor_scores = compute_fidelity(train.images, test.images, **common)
    untrained = None
    if cfg.evaluate.untrained_baseline:
        untrained_samples = sample_images(
            build_untrained(record["generator_config"], cfg.seed),
            cfg.evaluate.num_samples,
            cfg.evaluate.sample_seed,
            cfg.evaluate.batch_size,
        )
        untrained_scores = compute_fidelity(untrained_samples, test.images, **common)
        untrained = {key: untrained_scores[key] for key in FIDELITY_SCORES}
    memorization = check_memorization(
        cfg,
        samples,
        train,
        test,
        common["weights_path"],
        {key: record[key] for key in RUN_KEYS if key != "model"} | {"model": cfg.model.name},
    )
    objective = extractor_objective(cfg)
    if objective.startswith("self-supervised"):
        # Rotation classes say nothing about sample quality: no Inception-style score.
        for scores in (model_scores, floor_scores, untrained or {}):
            scores.update(isc_mean=None, isc_std=None)
    result = {
        "model": cfg.model.name,
        "run_id": record["run_id"],
        "dvc_experiment": record["train"].get("links", {}).get("dvc_experiment"),
        "extractor": cfg.metrics.extractor,
        "extractor_objective": objective,
        "weights_sha256": model_scores.get("weights_sha256"),
        **{key: model_scores[key] for key in FIDELITY_SCORES},
        "floor": {key: floor_scores[key] for key in FIDELITY_SCORES},
        "untrained": untrained,
        "memorization": memorization,
        "counts": {
            "samples": model_scores["num_samples"],
            "reference": model_scores["num_reference"],
            "floor_train": floor_scores["num_samples"],
            "floor_test": floor_scores["num_reference"],
            "kid_subset_size": model_scores["kid_subset_size"],
            "floor_kid_subset_size": floor_scores["kid_subset_size"],
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
    write_json(metrics_file(cfg.paths.metrics_dir, cfg.model.name), result)
    log_to_existing_run(
        cfg.logger,
        run_dir,
        record["run_id"],
        {f"eval/{k}": result[k] for k in FIDELITY_SCORES if result[k] is not None}
        | {f"eval/floor_{k}": result["floor"][k] for k in FIDELITY_SCORES if result[k] is not None}
        | {
            f"eval/memorization_{space}_fraction": memorization[space]["fraction_below_threshold"]
            for space in ("feature", "pixel")
        },
        job_type="evaluate",
    )
    print(
        f"evaluate {cfg.model.name} ({cfg.metrics.extractor}): "
        + ", ".join(
            f"{k}={result[k]:.4g} (floor {result['floor'][k]:.4g})"
            for k in ("fid", "kid_mean", "isc_mean")
            if result[k] is not None
        )
        + f"; samples closer to a training image than {memorization['quantile']:.0%} of real "
        f"test images: {memorization['feature']['fraction_below_threshold']:.1%} (features), "
        f"{memorization['pixel']['fraction_below_threshold']:.1%} (pixels)"
    )
    return result
