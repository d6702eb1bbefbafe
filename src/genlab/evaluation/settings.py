"""The evaluation's settings, read from the config once for every caller (the evaluate stage
and the sweep objective), so both score alike and share the cached reference statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from genlab.data.datamodule import to_uint8
from genlab.errors import StageInputError
from genlab.evaluation.classifier_training import SUPERVISED_OBJECTIVE
from genlab.evaluation.fidelity import check_weights_file
from genlab.layout import classifier_report, stage_instance
from genlab.models.standing_statistics import balanced_labels


def extractor_weights(cfg: DictConfig) -> str | None:
    """The extractor's weights file, checked before any work (an Inception file must load as
    plain tensors: torch-fidelity unpickles it without restrictions)."""
    weights = cfg.metrics.weights_path
    if weights is not None and not Path(weights).is_file():
        hint = (
            "run the train_classifier stage (`dvc repro train_classifier`)"
            if cfg.metrics.extractor == "classifier"
            else "set metrics.weights_path to a local InceptionV3 weights file, or null to download"
        )
        raise StageInputError(f"feature extractor weights {weights} not found: {hint}")
    if weights is not None and cfg.metrics.extractor == "inception":
        check_weights_file(weights)
    return weights


def fidelity_options(cfg: DictConfig) -> dict[str, Any]:
    """compute_fidelity's settings against the test split."""
    return dict(
        extractor=cfg.metrics.extractor,
        weights_path=extractor_weights(cfg),
        kid_subset_size=cfg.evaluate.kid_subset_size,
        kid_subsets=cfg.evaluate.kid_subsets,
        batch_size=cfg.evaluate.batch_size,
        cache_dir=cfg.paths.cache_dir,
        reference_cache_name=f"{cfg.data.name}-{cfg.data.image_size}-test",
    )


def evaluation_options(cfg: DictConfig) -> dict[str, Any]:
    """compute_fidelity's settings for the evaluate stage: ``fidelity_options`` plus precision /
    recall / density / coverage, bootstrap intervals and the sample-count curve (a sweep's
    quick objective needs only FID / KID and skips them)."""
    evaluate = cfg.evaluate
    return dict(
        **fidelity_options(cfg),
        nearest_k=evaluate.nearest_k,
        bootstrap_rounds=evaluate.bootstrap.rounds,
        bootstrap_level=evaluate.bootstrap.level,
        bootstrap_seed=evaluate.bootstrap.seed,
        sample_counts=tuple(evaluate.sample_counts),
        sample_count_draws=evaluate.sample_count_draws,
    )


def extractor_objective(cfg: DictConfig) -> str:
    """What the feature extractor was trained for, as recorded by train_classifier."""
    if cfg.metrics.extractor != "classifier":
        return "ImageNet classification (InceptionV3)"
    report = classifier_report(cfg.metrics.weights_path)
    if report.is_file():
        return json.loads(report.read_text()).get("objective", "supervised")
    return SUPERVISED_OBJECTIVE


def real_sample(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` real images drawn without replacement (all of them when there are fewer), in
    split order: the floor is scored at the model's sample count, so that it says what a
    perfect model scores at these counts (and a 60,000-image train split is not scored whole).
    """
    if count >= len(images):
        return images
    chosen = np.random.default_rng(seed).choice(len(images), count, replace=False)
    return images[np.sort(chosen)]


def generator_classes(generator: torch.nn.Module) -> int:
    """How many classes ``generator`` is conditioned on (0: unconditional)."""
    return int(getattr(generator, "num_classes", 0) or 0)


def sample_labels(generator: torch.nn.Module, count: int) -> torch.Tensor | None:
    """The class each of ``count`` evaluation samples is drawn for (``balanced_labels``: i % C,
    on the CPU), or None for an unconditional generator."""
    return balanced_labels(count, generator_classes(generator))


@torch.no_grad()
def sample_images(
    generator: torch.nn.Module,
    count: int,
    seed: int,
    batch_size: int,
    model: str | None = None,
    training_seed: int | None = None,
) -> torch.Tensor:
    """``count`` uint8 images (on the CPU) from fixed latents: the same seed always gives the
    same samples, wherever the generator runs (the latents are drawn on the CPU). A conditional
    generator gets balanced labels (sample i is drawn for class i % C: ``sample_labels``), so
    every class is scored alike; an unconditional one gets none.

    NaN/inf outputs fail here: converted to uint8 they would be scored as black pixels.
    ``model`` and ``training_seed`` name the run in that message.
    """
    latents = torch.randn(
        count, generator.latent_dim, generator=torch.Generator().manual_seed(seed)
    )
    device = next(generator.parameters(), torch.empty(0)).device
    chunks = latents.split(batch_size)
    labels = sample_labels(generator, count)
    label_chunks = [None] * len(chunks) if labels is None else labels.split(batch_size)
    batches = []
    for chunk, chunk_labels in zip(chunks, label_chunks, strict=True):
        if chunk_labels is None:
            images = generator(chunk.to(device)).cpu()
        else:
            images = generator(chunk.to(device), chunk_labels.to(device)).cpu()
        if not torch.isfinite(images).all():
            bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
            raise StageInputError(
                f"the generator of {model or 'the model'} produced non-finite samples (NaN/inf "
                f"in {bad} of {len(images)} images of a batch, sample seed {seed}), which would "
                f"be scored as black pixels: training diverged. Re-train it "
                f"(`dvc repro {stage_instance('train', model or '<model>', training_seed)}`), "
                f"with a lower model.optim.lr if the losses exploded"
            )
        batches.append(to_uint8(images))
    return torch.cat(batches)
