"""FID / IS / KID computed by torch-fidelity's own code, offline-capable.

Two extractors: ``classifier`` (the genlab DomainClassifier, local weights only, fast on CPU) and
``inception`` (torch-fidelity's ``inception-v3-compat``, the numbers papers report; its weights
are downloaded on first use unless a local file is given). The reference's features may be
cached; the cache name is keyed on the extractor, the weights file's bytes and the reference
images, so features from other weights or other data can never be reused by mistake.

Nothing here unpickles a file: torch-fidelity loads a weights file with
``torch.load(weights_only=False)``, so a local Inception weights file is read once, proven to
load with ``weights_only=True``, and torch-fidelity reads a private copy of those same bytes
(never the user's path again); torch-fidelity's own (pickle) cache is never used: the
reference features are cached by genlab as safetensors. A cache file that is not valid
safetensors of the expected shape is ignored and recomputed (it is only a cache).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genlab.checks import require_positive
from genlab.errors import StageInputError
from genlab.io import atomic_path, file_digest
from genlab.metric_keys import MANIFOLD_SCORES

EXTRACTORS = {"classifier": "genlab-classifier", "inception": "inception-v3-compat"}
# sha256 of torch-fidelity's InceptionV3 weights (weights-inception-2015-12-05-6726825d.pth,
# 95,628,359 bytes; torch.hub names the file after the first 8 hex digits)
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
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


def extractor_name(extractor: str) -> str:
    """torch-fidelity's registry name of a genlab extractor choice; ValueError if unknown."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; valid choices: {sorted(EXTRACTORS)}")
    return EXTRACTORS[extractor]


def extractor_input(feature_extractor: Any) -> dict[str, Any]:
    """What the extractor sees of an image: the resize filter and the size it resizes to."""
    classifier = getattr(feature_extractor, "classifier", None)
    if classifier is not None:  # genlab's DomainClassifier (feature_extractors.py)
        from genlab.networks.classifier import INPUT_RESIZE

        options = ", ".join(f"{key}={value}" for key, value in INPUT_RESIZE.items())
        return {
            "filter": f"torch.nn.functional.interpolate({options}), only when the size differs",
            "size": classifier.image_size,
        }
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return {
        "filter": "bilinear, TensorFlow 1.x compatible (torch-fidelity)",
        "size": FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE,
    }


def inception_weights_known(weights_sha256: str | None) -> bool | None:
    """True when a local weights file is torch-fidelity's InceptionV3 (its sha256), False when
    it is not, None for weights torch-fidelity downloaded itself (it does not check them)."""
    return None if weights_sha256 is None else weights_sha256 == INCEPTION_SHA256


def _resolve_weights(
    extractor: str, weights_path: str | None
) -> tuple[str, str | None, bytes | None]:
    """-> (torch-fidelity extractor name, sha256, the checked bytes of an Inception file)."""
    name = extractor_name(extractor)
    if extractor == "classifier":
        if weights_path is None:
            raise ValueError(
                "extractor='classifier' needs weights_path: the file written by the "
                "`train_classifier` stage (classifier weights are never downloaded)"
            )
        from genlab.evaluation.classifier_training import load_classifier

        load_classifier(weights_path)  # fail early with the "run train_classifier" message
        return name, file_digest(weights_path), None
    if weights_path is None:
        return name, None, None
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"Inception weights file {weights_path} does not exist")
    data = Path(weights_path).read_bytes()  # read once: hashed, checked and used as one
    sha = hashlib.sha256(data).hexdigest()
    _check_tensor_bytes(weights_path, data, sha)
    if not inception_weights_known(sha):
        warnings.warn(
            f"Inception weights file {weights_path} (metrics.weights_path) has sha256 {sha}, "
            f"not torch-fidelity's InceptionV3 weights ({INCEPTION_SHA256}): its FID / KID are "
            f"not comparable with published Inception scores. Use torch-fidelity's "
            f"weights-inception-2015-12-05-{INCEPTION_SHA256[:8]}.pth",
            stacklevel=3,
        )
    return name, sha, data


def check_weights_file(weights_path: str | os.PathLike) -> None:
    """Prove an Inception weights file is a plain state dict before torch-fidelity reads it.

    torch-fidelity 0.4 loads it with ``torch.load(weights_only=False)``, which runs whatever
    code a pickle names; ``weights_only=True`` reads tensors and refuses the rest.
    """
    data = Path(weights_path).read_bytes()
    _check_tensor_bytes(os.fspath(weights_path), data, hashlib.sha256(data).hexdigest())


_PLAIN_TENSORS: set[str] = set()  # digests already proven: evaluate scores several sets


def _check_tensor_bytes(weights_path: str, data: bytes, sha256: str) -> None:
    if sha256 in _PLAIN_TENSORS:
        return
    problem = None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        problem = f"it does not load as plain tensors ({type(error).__name__}: {first_line})"
    else:
        if not isinstance(state, dict) or not all(
            isinstance(key, str) and torch.is_tensor(value) for key, value in state.items()
        ):
            problem = f"it holds a {type(state).__name__}, not a state dict of tensors"
    if problem:
        raise StageInputError(
            f"Inception weights file {weights_path} (metrics.weights_path) is refused: {problem}. "
            f"A file that is not plain tensors can run code when torch-fidelity unpickles it. "
            f"Use a state dict saved with torch.save(model.state_dict(), path), or set "
            f"metrics.weights_path=null to download torch-fidelity's own weights"
        )
    _PLAIN_TENSORS.add(sha256)


def create_extractor(
    extractor: str, weights_path: str | None, features: list[str], **options: Any
) -> tuple[Any, str, str | None]:
    """-> (torch-fidelity's feature extractor on the CPU, its name, the weights' sha256).

    torch-fidelity unpickles an Inception file itself (``weights_only=False``), so it never
    gets the user's path: it gets a private copy (0600, in a fresh 0700 folder) of the exact
    bytes that were hashed and proven plain tensors. A file replaced after the check (another
    process, a sync client) is never read again.
    """
    import tempfile

    from torch_fidelity.utils import create_feature_extractor

    import genlab.evaluation.feature_extractors  # noqa: F401 - registers "genlab-classifier"

    name, sha, data = _resolve_weights(extractor, weights_path)
    options = {**options, "feature_extractor_weights_path": weights_path}
    if data is None:
        return create_feature_extractor(name, features, cuda=False, **options), name, sha
    with tempfile.TemporaryDirectory(prefix="genlab-inception-") as private:  # mode 0700
        copy = os.path.join(private, "weights.pth")
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        options["feature_extractor_weights_path"] = copy
        return create_feature_extractor(name, features, cuda=False, **options), name, sha


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
    nearest_k: int | None = None,
    bootstrap_rounds: int = 0,
    bootstrap_level: float = 0.95,
    bootstrap_seed: int = 0,
    sample_counts: Sequence[int] = (),
    sample_count_draws: int = 1,
) -> dict:
    """FID and KID of ``samples`` against ``reference``, IS of ``samples`` alone; with
    ``nearest_k``, precision / recall / density / coverage; with ``bootstrap_rounds``, their
    intervals; with ``sample_counts``, FID / KID against the sample count and FID_inf.

    torch-fidelity's own metric functions on torch-fidelity's extractors, exactly as its
    ``calculate_metrics`` runs them. Every score comes from one feature pass per set; only the
    reference's features are cached (when ``cache_dir`` is set, as safetensors): samples change
    every run.
    """
    require_positive(
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        batch_size=batch_size,
        sample_count_draws=sample_count_draws,
    )
    weights_path = None if weights_path is None else os.fspath(weights_path)
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; valid choices: {sorted(EXTRACTORS)}")
    fe_name = EXTRACTORS[extractor]
    samples = as_uint8_images(samples, "samples")
    reference = as_uint8_images(reference, "reference")
    n1, n2 = int(samples.shape[0]), int(reference.shape[0])
    if min(n1, n2) < 2:
        raise ValueError(f"need at least 2 samples and 2 reference images, got {n1} and {n2}")
    subset = min(kid_subset_size, n1, n2)
    isc_splits = min(_ISC_SPLITS, n1)  # more splits than samples gives empty splits (NaN)

    import torch_fidelity
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.utils import resolve_feature_layer_for_metric

    import genlab.evaluation.feature_extractors  # noqa: F401 - registers "genlab-classifier"

    options = dict(
        feature_extractor=fe_name,
        feature_extractor_weights_path=weights_path,
        isc_splits=isc_splits,
        kid_subset_size=subset,
        kid_subsets=kid_subsets,
        verbose=verbose,
    )
    layers = {m: resolve_feature_layer_for_metric(m, **options) for m in ("isc", "fid", "kid")}
    feature_extractor, _, weights_sha = create_extractor(
        extractor, weights_path, sorted(set(layers.values())), **options
    )
    cache_key = None
    if cache_dir:  # keyed on the digest of the bytes the extractor was built from
        cache_key = reference_cache_key(
            reference_cache_name, fe_name, weights_sha, _sha256_images(reference)
        )

    def features(images: torch.Tensor) -> dict[str, torch.Tensor]:
        from torch_fidelity.utils import get_featuresdict_from_dataset

        return get_featuresdict_from_dataset(
            ImageTensorDataset(images), feature_extractor, batch_size, False, True, verbose
        )

    reference_layers = sorted({layers["fid"], layers["kid"]})
    sample_features = features(samples)
    if cache_key is None:
        reference_features = features(reference)
    else:
        path = Path(cache_dir) / f"{cache_key}-{fe_name}-features.safetensors"
        reference_features = _cached_features(path, reference_layers, n2, verbose)
        if reference_features is None:
            reference_features = features(reference)
            _write_features(path, {k: reference_features[k] for k in reference_layers}, verbose)
    metrics = {
        **isc_featuresdict_to_metric(sample_features, layers["isc"], **options),
        **fid_statistics_to_metric(
            fid_featuresdict_to_statistics(sample_features, layers["fid"]),
            fid_featuresdict_to_statistics(reference_features, layers["fid"]),
            verbose,
        ),
        **kid_featuresdict_to_metric(sample_features, reference_features, layers["kid"], **options),
    }
    scores = {
        "fid": float(metrics[torch_fidelity.KEY_METRIC_FID]),
        "isc_mean": float(metrics[torch_fidelity.KEY_METRIC_ISC_MEAN]),
        "isc_std": float(metrics[torch_fidelity.KEY_METRIC_ISC_STD]),
        "kid_mean": float(metrics[torch_fidelity.KEY_METRIC_KID_MEAN]),
        "kid_std": float(metrics[torch_fidelity.KEY_METRIC_KID_STD]),
    }
    spread = _spread_scores(
        sample_features[layers["fid"]],
        reference_features[layers["fid"]],
        scores,
        nearest_k=nearest_k,
        bootstrap=dict(rounds=bootstrap_rounds, level=bootstrap_level, seed=bootstrap_seed),
        sample_counts=sample_counts,
        sample_count_draws=sample_count_draws,
        verbose=verbose,
    )
    return {
        **scores,
        **spread,
        "num_samples": n1,
        "num_reference": n2,
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
        "isc_splits": isc_splits,
        "extractor": extractor,
        "feature_extractor": fe_name,
        "weights_sha256": weights_sha,
        "weights_known": (
            None if extractor == "classifier" else inception_weights_known(weights_sha)
        ),
        "input": extractor_input(feature_extractor),
        "reference_cache_key": cache_key,
    }


def kid_from_features(
    sample_features: torch.Tensor,
    reference_features: torch.Tensor,
    *,
    kid_subset_size: int,
    kid_subsets: int,
) -> dict[str, Any]:
    """KID of two sets already embedded (e.g. one class's samples and test images, in the
    features compute_fidelity's KID uses), by torch-fidelity's own KID code; the subset size is
    capped at the smaller set, as compute_fidelity caps it. None for the scores when a set has
    fewer than 2 items (an unbiased KID needs 2)."""
    require_positive(kid_subset_size=kid_subset_size, kid_subsets=kid_subsets)
    import torch_fidelity
    from torch_fidelity.metric_kid import kid_features_to_metric

    subset = min(kid_subset_size, len(sample_features), len(reference_features))
    if subset < 2:
        return {"kid_mean": None, "kid_std": None, "kid_subset_size": subset}
    metric = kid_features_to_metric(
        sample_features,
        reference_features,
        kid_subset_size=subset,
        kid_subsets=kid_subsets,
        verbose=False,
    )
    return {
        "kid_mean": float(metric[torch_fidelity.KEY_METRIC_KID_MEAN]),
        "kid_std": float(metric[torch_fidelity.KEY_METRIC_KID_STD]),
        "kid_subset_size": subset,
    }


def _spread_scores(
    sample_features: torch.Tensor,
    reference_features: torch.Tensor,
    point: dict[str, float],
    *,
    nearest_k: int | None,
    bootstrap: dict[str, Any],
    sample_counts: Sequence[int],
    sample_count_draws: int,
    verbose: bool = False,
) -> dict[str, Any]:
    """The scores beyond FID / IS / KID, from the same features (FID's layer)."""
    from genlab.evaluation.manifold import ManifoldDistances
    from genlab.evaluation.uncertainty import (
        INTERVAL_METHOD,
        KernelSums,
        bootstrap_intervals,
        sample_count_curve,
    )

    out: dict[str, Any] = dict.fromkeys(MANIFOLD_SCORES)
    out.update(nearest_k=nearest_k, intervals=None, bootstrap=None, fid_inf=None, curve=None)
    manifold = None
    kernels = (
        KernelSums(sample_features, reference_features)
        if bootstrap["rounds"] or sample_counts
        else None
    )
    if nearest_k is not None:
        manifold = ManifoldDistances(sample_features, reference_features, nearest_k)
        out.update(manifold.scores())
    if bootstrap["rounds"]:
        out["intervals"] = bootstrap_intervals(
            sample_features,
            reference_features,
            {**point, **{key: out[key] for key in MANIFOLD_SCORES if out[key] is not None}},
            nearest_k=nearest_k,
            manifold=manifold,
            kernels=kernels,
            progress=verbose,
            **bootstrap,
        )
        out["bootstrap"] = {**bootstrap, "method": INTERVAL_METHOD}
    if sample_counts:
        out["curve"] = sample_count_curve(
            sample_features,
            reference_features,
            sample_counts,
            draws=sample_count_draws,
            seed=bootstrap["seed"],
            kernels=kernels,
        )
        out["fid_inf"] = out["curve"]["fid_inf"]
    return out


def _cached_features(
    path: Path, layers: list[str], count: int, verbose: bool
) -> dict[str, torch.Tensor] | None:
    """The cached reference features, or None when absent or not what this call needs.

    Read as safetensors (tensors only, no code); anything else is ignored and recomputed.
    """
    if not path.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as error:
        reason = f"{type(error).__name__}: {error}"
    else:
        if sorted(tensors) == layers and all(
            t.dim() == 2 and t.shape[0] == count and t.is_floating_point() and t.isfinite().all()
            for t in tensors.values()
        ):
            if verbose:
                print(f"Loading cached reference features {path}", file=sys.stderr)
            return tensors
        reason = (
            f"it holds {sorted(tensors)} with shapes {[list(t.shape) for t in tensors.values()]}"
        )
    warnings.warn(
        f"ignoring the reference features cache {path} ({reason[:200]}); recomputing it",
        stacklevel=3,
    )
    return None


def _write_features(path: Path, tensors: dict[str, torch.Tensor], verbose: bool) -> None:
    from safetensors.torch import save_file

    if verbose:
        print(f"Caching reference features {path}", file=sys.stderr)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
