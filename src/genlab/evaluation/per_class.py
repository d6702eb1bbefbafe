"""Per-class evaluation: does each class come out well, not only the mixture?

For every class of the dataset: intra-class KID (that class's samples against that class's test
images, in the features the run's KID uses), how many samples and test images it had, the
classifier's accuracy on samples drawn for it ("does G(z, 7) look like a 7": conditional models
only), and the share of its samples the memorization check flags. A conditional model's sample i
is drawn for class i % C (``balanced_labels``); an unconditional model's samples are grouped by
the class the classifier predicts. Plus the class x seed grid: a row per class, a column per
latent seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab.checks import class_names
from genlab.data.datamodule import to_uint8
from genlab.data.store import Split, read_meta
from genlab.errors import StageInputError
from genlab.evaluation.classifier_training import load_classifier
from genlab.evaluation.fidelity import as_uint8_images, kid_from_features
from genlab.layout import class_grid
from genlab.metric_keys import (
    CLASS_ACCURACY,
    CLASSES_DRAWN,
    INTRA_CLASS_KID,
    PER_CLASS_ROW_KEYS,
    WORST_CLASS,
    classes_drawn,
    worst_class,
)
from genlab.networks.classifier import DomainClassifier, to_classifier_input
from genlab.provenance import save_grid

GRID_SEEDS = 8  # columns of the class grid: latent seeds 0..7


@torch.no_grad()
def classify(classifier: DomainClassifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The classifier's predicted class (int64, N) of uint8 images."""
    classifier.eval()
    images = as_uint8_images(images)
    predicted = [
        classifier(to_classifier_input(batch, classifier.in_channels, classifier.image_size))
        .argmax(dim=1)
        .cpu()
        for batch in images.split(batch_size)
    ]
    return torch.cat(predicted) if predicted else torch.empty(0, dtype=torch.int64)


def class_rows(
    names: Sequence[str],
    sample_classes: torch.Tensor,
    test_labels: torch.Tensor,
    sample_features: torch.Tensor,
    test_features: torch.Tensor,
    *,
    predicted: torch.Tensor | None,
    conditional: bool,
    memorized: torch.Tensor | None,
    kid_subset_size: int,
    kid_subsets: int,
) -> list[dict[str, Any]]:
    """One row per class (metric_keys.PER_CLASS_ROW_KEYS).

    ``sample_classes``: the class each sample is scored under (a conditional model: the class it
    was drawn for; an unconditional one: the classifier's prediction). ``predicted``: the
    classifier's prediction of each sample, for the accuracy of a conditional model (None: no
    accuracy). ``memorized``: bool per sample, too close to a training image (None: not
    measured)."""
    sample_classes, test_labels = sample_classes.cpu().long(), test_labels.cpu().long()
    if len(sample_classes) != len(sample_features) or len(test_labels) != len(test_features):
        raise ValueError(
            f"{len(sample_classes)} sample classes for {len(sample_features)} samples, "
            f"{len(test_labels)} test labels for {len(test_features)} test images"
        )
    rows = []
    for index, name in enumerate(names):
        mine, theirs = sample_classes == index, test_labels == index
        count = int(mine.sum())
        kid = kid_from_features(
            sample_features[mine],
            test_features[theirs],
            kid_subset_size=kid_subset_size,
            kid_subsets=kid_subsets,
        )
        accuracy = None
        if conditional and predicted is not None and count:
            accuracy = float((predicted.cpu()[mine] == index).double().mean())
        memorized_fraction = None
        if memorized is not None and count:
            memorized_fraction = float(memorized.cpu()[mine].double().mean())
        row = {
            "class": name,
            "index": index,
            "samples": count,
            "test_images": int(theirs.sum()),
            "kid_mean": kid["kid_mean"],
            "kid_std": kid["kid_std"],
            "accuracy": accuracy,
            "memorized_fraction": memorized_fraction,
        }
        rows.append({key: row[key] for key in PER_CLASS_ROW_KEYS})
    return rows


def _mean(values: list[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


def class_summary(rows: list[dict[str, Any]], conditional: bool) -> dict[str, float | None]:
    """The flat top-level keys: mean per-class accuracy (None unconditional) and mean
    intra-class KID over the classes that have one (the drawn classes: the per_class section's
    ``classes_drawn`` says how many, so a reader can tell a mean over every class from one
    that leaves out the classes an unconditional model never draws)."""
    return {
        CLASS_ACCURACY: _mean([row["accuracy"] for row in rows]) if conditional else None,
        INTRA_CLASS_KID: _mean([row["kid_mean"] for row in rows]),
    }


def per_class_section(
    rows: list[dict[str, Any]], conditional: bool, grid: str | None
) -> dict[str, Any]:
    """metrics/<run>.json's ``per_class`` section: the rows, the worst class (a class drawn
    fewer than twice first) and how many classes were drawn at least twice."""
    return {
        "conditional": conditional,
        "rows": rows,
        WORST_CLASS: worst_class(rows),
        CLASSES_DRAWN: classes_drawn(rows),
        "grid": grid,
    }


def grid_latents(latent_dim: int, seeds: int = GRID_SEEDS) -> torch.Tensor:
    """(seeds, latent_dim): latent seed s is ``randn(1, latent_dim)`` from a CPU generator
    seeded with s, as ``genlab generate --seed s`` draws it."""
    return torch.cat(
        [
            torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(seed))
            for seed in range(seeds)
        ]
    )


@torch.no_grad()
def conditional_grid(generator: torch.nn.Module, num_classes: int) -> torch.Tensor:
    """uint8 (num_classes * GRID_SEEDS, C, H, W): row c holds class c at latent seeds 0..7
    (the same z in each column)."""
    device = next(generator.parameters(), torch.empty(0)).device
    latents = grid_latents(generator.latent_dim).to(device)
    rows = [
        to_uint8(
            generator(latents, torch.full((len(latents),), c, dtype=torch.long, device=device))
            .float()
            .cpu()
        )
        for c in range(num_classes)
    ]
    return torch.cat(rows)


@torch.no_grad()
def seed_row(generator: torch.nn.Module) -> torch.Tensor:
    """uint8 (GRID_SEEDS, C, H, W): an unconditional generator at latent seeds 0..7."""
    device = next(generator.parameters(), torch.empty(0)).device
    return to_uint8(generator(grid_latents(generator.latent_dim).to(device)).float().cpu())


def grouped_grid(samples: torch.Tensor, sample_classes: torch.Tensor, num_classes: int):
    """uint8 (num_classes * GRID_SEEDS, ...): row c holds the first GRID_SEEDS samples scored
    under class c (an unconditional model: those the classifier assigns to c), black tiles
    where there are fewer."""
    samples = as_uint8_images(samples)
    tiles = torch.zeros((num_classes * GRID_SEEDS, *samples.shape[1:]), dtype=torch.uint8)
    for c in range(num_classes):
        chosen = samples[sample_classes.cpu() == c][:GRID_SEEDS]
        tiles[c * GRID_SEEDS : c * GRID_SEEDS + len(chosen)] = chosen
    return tiles


def save_class_grid(tiles: torch.Tensor, path: Path, provenance: Mapping[str, str], content: str):
    """The class x seed grid (uint8 tiles, GRID_SEEDS a row), signed and labelled like the
    evaluate stage's other images."""
    return save_grid(
        tiles.float().div(127.5).sub(1),
        path,
        {**provenance, "content": content},
        nrow=GRID_SEEDS,
    )


def dataset_class_names(cfg: DictConfig, record: Mapping[str, Any], num_classes: int):
    """The class names rows are named after: a conditional generator's own (its record's
    ``class_names``), else the dataset's meta.json ``classes``; None for unlabelled data."""
    if num_classes:
        names = record.get("class_names")
        if names is None or len(names) != num_classes:
            raise StageInputError(
                f"the generator is conditioned on {num_classes} classes but its record names "
                f"{'none' if names is None else len(names)}: re-train it on a dataset whose "
                f"meta.json lists its classes"
            )
        return list(names)
    return class_names(read_meta(cfg.data.dir).get("classes"))


def sample_classifier(cfg: DictConfig, num_names: int) -> DomainClassifier | None:
    """The classifier evaluate extracts features with (paths.classifier), when it is there and
    tells the dataset's classes apart; else None (no accuracy, no grouping), with a warning."""
    path = Path(cfg.paths.classifier)
    if not path.is_file():
        warnings.warn(
            f"per-class evaluation without a classifier: {path} does not exist (run the "
            f"train_classifier stage): no per-class accuracy, no grouping of unconditional samples",
            stacklevel=2,
        )
        return None
    classifier = load_classifier(path)
    if classifier.num_classes != num_names:
        warnings.warn(
            f"per-class evaluation without a classifier: {path} predicts "
            f"{classifier.num_classes} classes, the dataset names {num_names}",
            stacklevel=2,
        )
        return None
    return classifier


def evaluate_per_class(
    cfg: DictConfig,
    generator: torch.nn.Module,
    record: Mapping[str, Any],
    samples: torch.Tensor,
    sample_labels: torch.Tensor | None,
    test: Split,
    memorized: torch.Tensor,
    sample_features: torch.Tensor,
    test_features: torch.Tensor,
    provenance: Mapping[str, str],
) -> tuple[dict[str, Any] | None, dict[str, float | None]]:
    """(metrics/<run>.json's per_class section or None for unlabelled data, the flat class
    summary keys), and the class x seed grid written beside the metrics file.

    ``sample_labels``: the class each sample was drawn for (None: an unconditional model);
    ``memorized``, ``sample_features``, ``test_features``: what the memorization check
    measured, in the feature space of the run's KID."""
    num_classes = int(getattr(generator, "num_classes", 0) or 0)
    conditional = sample_labels is not None
    names = dataset_class_names(cfg, record, num_classes)
    path = class_grid(cfg.paths.metrics_dir, cfg.paths.run_name)
    if names is None:  # unlabelled data: one row of latent seeds, no per-class figures
        save_class_grid(seed_row(generator), path, provenance, "samples at latent seeds 0..7")
        return None, {CLASS_ACCURACY: None, INTRA_CLASS_KID: None}
    classifier = sample_classifier(cfg, len(names))
    predicted = (
        None if classifier is None else classify(classifier, samples, cfg.evaluate.batch_size)
    )
    if conditional:
        sample_classes = sample_labels
        tiles, content = (
            conditional_grid(generator, num_classes),
            "a row per class, a column per latent seed 0..7",
        )
    elif predicted is not None:
        sample_classes = predicted
        tiles = grouped_grid(samples, predicted, len(names))
        content = "a row per class: the first samples the classifier assigns to it"
    else:  # no classifier to group an unconditional model's samples by
        save_class_grid(seed_row(generator), path, provenance, "samples at latent seeds 0..7")
        return None, {CLASS_ACCURACY: None, INTRA_CLASS_KID: None}
    rows = class_rows(
        names,
        sample_classes,
        torch.from_numpy(test.labels),
        sample_features,
        test_features,
        predicted=predicted,
        conditional=conditional,
        memorized=memorized,
        kid_subset_size=cfg.evaluate.kid_subset_size,
        kid_subsets=cfg.evaluate.kid_subsets,
    )
    save_class_grid(tiles, path, provenance, f"{content} ({len(names)} classes, in index order)")
    return per_class_section(rows, conditional, path.name), class_summary(rows, conditional)
