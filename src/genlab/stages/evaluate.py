"""evaluate@<model>: FID / IS / KID of the sampling generator against the test split, beside
the real-vs-real floor (train split vs test split) and, optionally, the same network untrained,
all measured with the same extractor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab.data.datamodule import to_uint8
from genlab.data.store import read_split
from genlab.io import write_json
from genlab.models.generator_file import build_untrained, load_generator
from genlab.stages.errors import StageInputError
from genlab.stages.train import GENERATOR_FILE
from genlab.tracking.wandb_setup import log_to_existing_run

REPORTED = ("fid", "isc_mean", "isc_std", "kid_mean", "kid_std")


@torch.no_grad()
def sample_images(
    generator: torch.nn.Module, count: int, seed: int, batch_size: int
) -> torch.Tensor:
    """``count`` uint8 images from fixed latents: the same seed always gives the same samples."""
    latents = torch.randn(
        count, generator.latent_dim, generator=torch.Generator().manual_seed(seed)
    )
    return torch.cat([to_uint8(generator(chunk)) for chunk in latents.split(batch_size)])


def extractor_weights(cfg: DictConfig) -> str | None:
    weights = cfg.metrics.weights_path
    if weights is not None and not Path(weights).is_file():
        hint = (
            "run the train_classifier stage (`dvc repro train_classifier`)"
            if cfg.metrics.extractor == "classifier"
            else "set metrics.weights_path to a local InceptionV3 weights file, or null to download"
        )
        raise StageInputError(f"feature extractor weights {weights} not found: {hint}")
    return weights


def fidelity_options(cfg: DictConfig) -> dict[str, Any]:
    """compute_fidelity's settings against the test split, shared with the sweep objective so
    both score alike and share the cached reference statistics."""
    return dict(
        extractor=cfg.metrics.extractor,
        weights_path=extractor_weights(cfg),
        kid_subset_size=cfg.evaluate.kid_subset_size,
        kid_subsets=cfg.evaluate.kid_subsets,
        batch_size=cfg.evaluate.batch_size,
        cache_dir=cfg.paths.cache_dir,
        reference_cache_name=f"{cfg.data.name}-{cfg.data.image_size}-test",
    )


def extractor_objective(cfg: DictConfig) -> str:
    """What the feature extractor was trained for, as recorded by train_classifier."""
    if cfg.metrics.extractor != "classifier":
        return "ImageNet classification (InceptionV3)"
    report = Path(cfg.metrics.weights_path).with_suffix(".json")
    if report.is_file():
        return json.loads(report.read_text()).get("objective", "supervised")
    return "supervised: the dataset's class labels"


def memorization_image_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.metrics_dir) / f"{cfg.model.name}_nearest_training.png"


def check_memorization(
    cfg: DictConfig, samples: torch.Tensor, train, test, weights: str | None, provenance: dict
) -> dict[str, Any]:
    """Memorization figures, and the grid of the closest sample / training-image pairs."""
    from genlab.evaluation.memorization import fidelity_embedder, memorization_report
    from genlab.export.provenance import save_grid

    settings = cfg.evaluate.memorization
    embed = fidelity_embedder(cfg.metrics.extractor, weights, cfg.evaluate.batch_size)
    report, pairs = memorization_report(
        samples,
        torch.from_numpy(train.images),
        torch.from_numpy(test.images),
        embed,
        quantile=settings.quantile,
        num_pairs=settings.pairs,
    )
    path = memorization_image_path(cfg)
    # Pairs side by side: each sample, then its nearest training image (not machine-made).
    save_grid(
        pairs.float().div(127.5).sub(1),
        path,
        {**provenance, "content": "pairs: generated sample, then its nearest training image"},
        nrow=8,
        watermark=False,  # half of it is real training data
    )
    return {**report, "extractor": cfg.metrics.extractor, "pairs_image": str(path)}


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    from genlab.evaluation.fidelity import compute_fidelity

    run_dir = Path(cfg.paths.run_dir)
    generator, record = load_generator(run_dir / GENERATOR_FILE)
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
        untrained = {key: untrained_scores[key] for key in REPORTED}
    memorization = check_memorization(
        cfg,
        samples,
        train,
        test,
        common["weights_path"],
        {k: record[k] for k in ("run_id", "config_hash", "code_version")}
        | {"model": cfg.model.name},
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
        **{key: model_scores[key] for key in REPORTED},
        "floor": {key: floor_scores[key] for key in REPORTED},
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
    write_json(Path(cfg.paths.metrics_dir) / f"{cfg.model.name}.json", result)
    log_to_existing_run(
        cfg.logger,
        run_dir,
        record["run_id"],
        {f"eval/{k}": result[k] for k in REPORTED if result[k] is not None}
        | {f"eval/floor_{k}": result["floor"][k] for k in REPORTED if result[k] is not None}
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
