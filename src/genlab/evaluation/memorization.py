"""How close do samples come to copying training images?

For every sample, the distance to its nearest training image, in the evaluation extractor's
feature space and in pixel space. "Too close" is calibrated on real data: the threshold is a low
quantile of the distances from real *test* images to their nearest *training* image, so a model
that generalises flags about that quantile of its samples, and a model that copies flags far more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab.credentials import COMPOSITE
from genlab.data.store import Split
from genlab.evaluation.fidelity import (
    ImageTensorDataset,
    as_uint8_images,
    create_extractor,
    extractor_name,
)
from genlab.layout import nearest_training_image
from genlab.provenance import save_grid

Embed = Callable[[torch.Tensor], torch.Tensor]


def nearest_neighbours(
    queries: torch.Tensor, keys: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest key, in float64 so that a copy measures 0."""
    keys = keys.flatten(1).double()
    distances, indices = [], []
    for block in queries.flatten(1).double().split(chunk):
        nearest = torch.cdist(block, keys, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
        distances.append(nearest.values)
        indices.append(nearest.indices)
    return torch.cat(distances), torch.cat(indices)


def pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float vectors in [0, 1]."""
    return as_uint8_images(images).flatten(1).double() / 255.0


def fidelity_embedder(extractor: str, weights_path: str | None, batch_size: int = 100) -> Embed:
    """The features torch-fidelity's FID uses, from the same extractor and weights."""
    import torch_fidelity.utils as fidelity_utils
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    import genlab.evaluation.feature_extractors  # noqa: F401 - registers "genlab-classifier"

    registry_entry = FEATURE_EXTRACTORS_REGISTRY[extractor_name(extractor)]
    layer = registry_entry.get_default_feature_layer_for_metric("fid")
    # create_extractor hands torch-fidelity the checked bytes of the weights, never the path
    network, _, _ = create_extractor(extractor, weights_path, [layer], verbose=False)

    def embed(images: torch.Tensor) -> torch.Tensor:
        features = fidelity_utils.get_featuresdict_from_dataset(
            ImageTensorDataset(images), network, batch_size, False, True, False
        )
        return features[layer]

    return embed


def _space_report(
    samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, quantile: float
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    sample_distance, sample_nearest = nearest_neighbours(samples, train)
    test_distance, _ = nearest_neighbours(test, train)
    threshold = torch.quantile(test_distance, quantile).item()
    report = {
        "threshold": threshold,
        "fraction_below_threshold": (sample_distance < threshold).double().mean().item(),
        "sample_nn_median": sample_distance.median().item(),
        "test_nn_median": test_distance.median().item(),
        "closest_sample_distance": sample_distance.min().item(),
    }
    return report, sample_distance, sample_nearest


@dataclass(frozen=True)
class Memorization:
    """What the memorization check measured: the metrics file's figures, the closest pairs,
    which samples are too close (feature space), and the features it embedded (the per-class
    evaluation scores in the same space without embedding the sets again)."""

    report: dict[str, Any]
    pairs: torch.Tensor  # (2 * num_pairs) uint8 images: sample, nearest training image, ...
    flagged: torch.Tensor  # bool (N,): sample closer to a training image than the threshold
    sample_features: torch.Tensor
    test_features: torch.Tensor


def measure_memorization(
    samples: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    embed: Embed,
    quantile: float = 0.05,
    num_pairs: int = 16,
) -> Memorization:
    """The nearest training image of every sample, in features and pixels, against the
    threshold calibrated on the test split (see the module's docstring)."""
    if not 0 < quantile < 1:
        raise ValueError(f"memorization quantile must be in (0, 1), got {quantile}")
    samples, train, test = (as_uint8_images(x) for x in (samples, train, test))
    sample_features, test_features = embed(samples), embed(test)
    feature, feature_distance, feature_nearest = _space_report(
        sample_features, embed(train), test_features, quantile
    )
    pixel, _, _ = _space_report(pixels(samples), pixels(train), pixels(test), quantile)
    order = feature_distance.argsort()[: min(num_pairs, len(samples))]
    pairs = torch.stack([samples[order], train[feature_nearest[order]]], dim=1)  # (k, 2, ...)
    report = {
        "quantile": quantile,
        "expected_fraction_for_real_data": quantile,
        "calibration": "threshold = quantile of test-to-nearest-train distances",
        "feature": feature,
        "pixel": pixel,
        "pairs": int(len(order)),
    }
    return Memorization(
        report=report,
        pairs=pairs.flatten(0, 1),
        flagged=feature_distance < feature["threshold"],
        sample_features=sample_features,
        test_features=test_features,
    )


def check_memorization(
    cfg: DictConfig,
    samples: torch.Tensor,
    train: Split,
    test: Split,
    weights: str | None,
    provenance: dict[str, str],
) -> tuple[dict[str, Any], Memorization]:
    """Memorization figures, and the grid of the closest sample / training-image pairs; with
    what was measured (per-sample flags and features) for the per-class evaluation."""
    settings = cfg.evaluate.memorization
    embed = fidelity_embedder(cfg.metrics.extractor, weights, cfg.evaluate.batch_size)
    measured = measure_memorization(
        samples,
        torch.from_numpy(train.images),
        torch.from_numpy(test.images),
        embed,
        quantile=settings.quantile,
        num_pairs=settings.pairs,
    )
    path = save_pairs_grid(
        measured.pairs,
        nearest_training_image(cfg.paths.metrics_dir, cfg.paths.run_name),
        provenance,
    )
    return {
        **measured.report,
        "extractor": cfg.metrics.extractor,
        "pairs_image": str(path),
    }, measured


def save_pairs_grid(pairs: torch.Tensor, path: Path, provenance: Mapping[str, str]) -> Path:
    """The uint8 pairs side by side (each sample, then its nearest training image), signed as a
    composite: half of the grid is real training data, so no "machine-made" watermark either."""
    return save_grid(
        pairs.float().div(127.5).sub(1),
        path,
        {**provenance, "content": "pairs: generated sample, then its nearest training image"},
        nrow=8,
        watermark=False,
        source_type=COMPOSITE,
    )
