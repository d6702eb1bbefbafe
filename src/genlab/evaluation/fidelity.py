"""FID / IS / KID computed by torch-fidelity's own code, offline-capable.

Two extractors: ``classifier`` (the genlab DomainClassifier, local weights only, fast on CPU) and
``inception`` (torch-fidelity's ``inception-v3-compat``, the numbers papers report; its weights
are downloaded on first use unless a local file is given). Reference statistics may be cached;
the cache name is keyed on the extractor, the weights file's bytes and the reference images, so
statistics from other weights or other data can never be reused by mistake.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genlab.checks import require_positive
from genlab.io import file_digest

EXTRACTORS = {"classifier": "genlab-classifier", "inception": "inception-v3-compat"}
_ISC_SPLITS = 10
_HASH_CHARS = 16


def as_uint8_images(images: Any, name: str = "images") -> torch.Tensor:
    """uint8 N x C x H x W (C in 1, 3) array or tensor -> CPU tensor; else ValueError."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images if images.flags.writeable else images.copy())
    if not torch.is_tensor(images):
        kind = type(images).__name__
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {kind}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must be uint8 N x C x H x W with C in (1, 3), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    return images.detach().cpu().contiguous()


class ImageTensorDataset(Dataset):
    """uint8 N x C x H x W images -> uint8 3 x H x W tensors, the input torch-fidelity accepts."""

    def __init__(self, images: Any):
        self.images = as_uint8_images(images)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def _sha256_images(images: torch.Tensor) -> str:
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()


def reference_cache_key(
    reference_cache_name: str | None,
    feature_extractor: str,
    weights_sha256: str | None,
    reference_sha256: str,
) -> str:
    """Reference cache name: a readable prefix + a hash of everything the statistics depend on."""
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", reference_cache_name or "reference")
    weights = weights_sha256 or "torch-fidelity-default-weights"
    parts = (feature_extractor, weights, reference_sha256)
    return f"{prefix}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:_HASH_CHARS]}"


def _resolve_extractor(extractor: str, weights_path: str | None) -> tuple[str, str | None]:
    """-> (torch-fidelity extractor name, sha256 of the weights file or None)."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; valid choices: {sorted(EXTRACTORS)}")
    if extractor == "classifier":
        if weights_path is None:
            raise ValueError(
                "extractor='classifier' needs weights_path: the file written by the "
                "`train_classifier` stage (classifier weights are never downloaded)"
            )
        from genlab.evaluation.classifier_training import load_classifier

        load_classifier(weights_path)  # fail early with the "run train_classifier" message
    elif weights_path is not None and not os.path.isfile(weights_path):
        raise FileNotFoundError(f"Inception weights file {weights_path} does not exist")
    sha = file_digest(weights_path) if weights_path is not None else None
    return EXTRACTORS[extractor], sha


def compute_fidelity(
    samples: Any,
    reference: Any,
    *,
    extractor: str,
    weights_path: str | None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    batch_size: int = 64,
    cache_dir: str | None = None,
    reference_cache_name: str | None = None,
    verbose: bool = False,
) -> dict:
    """FID and KID of ``samples`` against ``reference``, IS of ``samples`` alone.

    Only the reference is cached (when ``cache_dir`` is set): samples change every run.
    """
    require_positive(
        kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, batch_size=batch_size
    )
    weights_path = None if weights_path is None else os.fspath(weights_path)
    fe_name, weights_sha = _resolve_extractor(extractor, weights_path)
    samples = as_uint8_images(samples, "samples")
    reference = as_uint8_images(reference, "reference")
    n1, n2 = int(samples.shape[0]), int(reference.shape[0])
    if min(n1, n2) < 2:
        raise ValueError(f"need at least 2 samples and 2 reference images, got {n1} and {n2}")
    subset = min(kid_subset_size, n1, n2)
    isc_splits = min(_ISC_SPLITS, n1)  # more splits than samples gives empty splits (NaN)
    cache_key = None
    if cache_dir:
        cache_key = reference_cache_key(
            reference_cache_name, fe_name, weights_sha, _sha256_images(reference)
        )

    import torch_fidelity

    import genlab.evaluation.feature_extractors  # noqa: F401 - registers "genlab-classifier"

    metrics = torch_fidelity.calculate_metrics(
        input1=ImageTensorDataset(samples),
        input2=ImageTensorDataset(reference),
        cuda=False,
        isc=True,
        fid=True,
        kid=True,
        save_cpu_ram=True,
        batch_size=batch_size,
        isc_splits=isc_splits,
        kid_subset_size=subset,
        kid_subsets=kid_subsets,
        feature_extractor=fe_name,
        feature_extractor_weights_path=weights_path,
        cache=bool(cache_dir),
        cache_root=cache_dir,
        input2_cache_name=cache_key,
        verbose=verbose,
    )
    return {
        "fid": float(metrics[torch_fidelity.KEY_METRIC_FID]),
        "isc_mean": float(metrics[torch_fidelity.KEY_METRIC_ISC_MEAN]),
        "isc_std": float(metrics[torch_fidelity.KEY_METRIC_ISC_STD]),
        "kid_mean": float(metrics[torch_fidelity.KEY_METRIC_KID_MEAN]),
        "kid_std": float(metrics[torch_fidelity.KEY_METRIC_KID_STD]),
        "num_samples": n1,
        "num_reference": n2,
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
        "isc_splits": isc_splits,
        "extractor": extractor,
        "feature_extractor": fe_name,
        "weights_sha256": weights_sha,
        "reference_cache_key": cache_key,
    }
