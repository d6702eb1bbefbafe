"""How far a score can be trusted: bootstrap intervals and the dependence on the sample count.

**Bootstrap.** Both sets (samples and reference) are resampled with replacement, ``rounds``
times, and every score is recomputed on the resampled features, from features and distances
computed once (no image passes through the extractor again). Resampling repeats images, which
lowers a set's diversity and so raises FID and KID on every round: the replicates sit above the
score by about the score's own small-sample bias. The interval is therefore the replicates'
percentile interval moved by that bias (the replicates' mean minus the score), so it is centred
where the score is and as wide as the replicates spread.

**Sample count.** FID is biased upward by ``~1/N`` (Chong & Forsyth 2020): FID at several sample
counts N (random subsets of the samples, against the whole reference) fitted by a line in 1/N;
its intercept is FID_inf, the FID at infinitely many samples, comparable between runs scored
with different N. KID is unbiased; its curve shows that it stays put.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rich.progress import track
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kernel_poly

from genlab.evaluation.manifold import ManifoldDistances
from genlab.metric_keys import (
    DISTRIBUTION_SCORES,
    INTERVAL_ENDS,
    INTERVAL_SCORES,
    SCORE_RANGES,
)

INTERVAL_METHOD = "bootstrap percentile, shifted by the bootstrap bias estimate"


def fid_of(sample_features: torch.Tensor, reference_features: torch.Tensor) -> float:
    """FID with torch-fidelity's own statistics and distance."""
    return _fid_against(sample_features, _statistics(reference_features))


def _statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    return fid_features_to_statistics(features.detach().cpu().to(torch.float64))


def _fid_against(sample_features: torch.Tensor, reference: dict[str, np.ndarray]) -> float:
    """FID of samples against reference statistics computed once (torch-fidelity's formula)."""
    result = fid_statistics_to_metric(_statistics(sample_features), reference, False)
    return float(next(iter(result.values())))


class KernelSums:
    """KID's polynomial kernel (torch-fidelity's: degree 3, gamma 1/d, coef0 1) between and
    within the sets, computed once; ``mmd2`` is the unbiased MMD^2 of any resample, with the
    pairs of a point with its own copies left out as the estimator leaves out the diagonal."""

    def __init__(self, sample_features: torch.Tensor, reference_features: torch.Tensor):
        x = sample_features.detach().cpu().to(torch.float64).numpy()
        y = reference_features.detach().cpu().to(torch.float64).numpy()
        # torch-fidelity's defaults, as its KID uses them
        self.xx, self.yy, self.xy = kernel_poly(x, x), kernel_poly(y, y), kernel_poly(x, y)

    @staticmethod
    def _within(kernel: np.ndarray, counts: np.ndarray) -> float:
        """Mean kernel over pairs of distinct points (NaN when a resample drew one point only)."""
        pairs = counts.sum() ** 2 - (counts**2).sum()
        if pairs == 0:
            return float("nan")
        return float((counts @ kernel @ counts - (counts**2) @ np.diagonal(kernel)) / pairs)

    def mmd2(self, sample_counts: np.ndarray, reference_counts: np.ndarray) -> float:
        pairs = sample_counts.sum() * reference_counts.sum()
        cross = sample_counts @ self.xy @ reference_counts / pairs
        within = self._within(self.xx, sample_counts) + self._within(self.yy, reference_counts)
        return float(within - 2 * cross)


def _draw_counts(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.bincount(rng.integers(0, size, size), minlength=size)


def _weighted_statistics(features: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (np.cov's, N - 1) of the set that holds point i counts[i] times."""
    total = counts.sum()
    mean = counts @ features / total
    centred = features - mean
    return mean, (centred.T * counts) @ centred / (total - 1)


def _fid_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """torch-fidelity's FID formula, with tr sqrt(S1 S2) from two symmetric eigen-solves
    (sqrt(S2) S1 sqrt(S2) has the eigenvalues of S1 S2): half the time of a general eigvals."""
    w, v = np.linalg.eigh(sigma2)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma1 @ root), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def bootstrap_intervals(
    sample_features: torch.Tensor,
    reference_features: torch.Tensor,
    point: dict[str, float],
    *,
    rounds: int,
    level: float,
    seed: int,
    nearest_k: int | None,
    manifold: ManifoldDistances | None = None,
    kernels: KernelSums | None = None,
    progress: bool = False,
) -> dict[str, dict[str, float] | None]:
    """score -> {low, high, std} for FID, KID and (with ``nearest_k``) the manifold scores.

    ``point`` holds the scores of the whole sets (the interval is centred on them);
    ``manifold`` and ``kernels`` reuse what the caller already computed. A round that drew a
    single point of a set has no KID (no distinct pairs): it is left out of KID's interval; a
    score with fewer than 2 usable rounds gets None. ``progress`` shows a bar: with Inception's
    2048 features a round takes seconds on a CPU.
    """
    if rounds < 2:
        raise ValueError(f"a bootstrap needs at least 2 rounds, got {rounds}")
    if not 0 < level < 1:
        raise ValueError(f"the interval's level must be between 0 and 1, got {level}")
    if manifold is None and nearest_k is not None:
        manifold = ManifoldDistances(sample_features, reference_features, nearest_k)
    kernels = kernels or KernelSums(sample_features, reference_features)
    samples64 = sample_features.detach().cpu().to(torch.float64).numpy()
    reference64 = reference_features.detach().cpu().to(torch.float64).numpy()
    n_s, n_r = samples64.shape[0], reference64.shape[0]
    rng = np.random.default_rng(seed)
    scored = INTERVAL_SCORES if manifold else DISTRIBUTION_SCORES
    replicates: dict[str, list[float]] = {key: [] for key in scored}
    for _ in track(range(rounds), "Bootstrap rounds", disable=not progress, transient=True):
        cs, cr = _draw_counts(rng, n_s), _draw_counts(rng, n_r)
        replicates["fid"].append(
            _fid_from_statistics(
                *_weighted_statistics(samples64, cs), *_weighted_statistics(reference64, cr)
            )
        )
        replicates["kid_mean"].append(kernels.mmd2(cs, cr))
        for key, value in (manifold.scores(cs, cr) if manifold else {}).items():
            replicates[key].append(value)
    tail = (1 - level) / 2
    intervals = {}
    for key, values in replicates.items():
        values = np.asarray(values)
        values = values[np.isfinite(values)]
        if values.size < 2:
            intervals[key] = None
            continue
        ends = np.quantile(values, [tail, 1 - tail]) - (values.mean() - point[key])  # bias
        ends = np.clip(ends, *SCORE_RANGES[key])
        intervals[key] = {
            **{end: float(value) for end, value in zip(INTERVAL_ENDS, ends, strict=True)},
            "std": float(values.std(ddof=1)),
        }
    return intervals


def sample_count_curve(
    sample_features: torch.Tensor,
    reference_features: torch.Tensor,
    counts: Sequence[int],
    *,
    draws: int,
    seed: int,
    kernels: KernelSums | None = None,
) -> dict[str, Any]:
    """FID and KID (unbiased MMD^2) at each sample count, the mean over ``draws`` random subsets
    of the samples against the whole reference, and FID_inf from a least-squares line in 1/N.

    The whole set is always one of the counts; counts above it are left out and listed under
    ``skipped``.
    """
    n_s, n_r = sample_features.shape[0], reference_features.shape[0]
    usable = sorted({int(n) for n in counts if 2 <= int(n) <= n_s} | {n_s})
    skipped = sorted({int(n) for n in counts} - set(usable))
    kernels = kernels or KernelSums(sample_features, reference_features)
    samples64 = sample_features.detach().cpu().to(torch.float64)
    reference = _statistics(reference_features)  # the whole reference at every count
    rng = np.random.default_rng(seed)
    ones_r = np.ones(n_r, np.int64)
    fids, kids = [], []
    for n in usable:
        fid_draws, kid_draws = [], []
        for _ in range(draws if n < n_s else 1):  # all the samples: one draw says it all
            chosen = rng.choice(n_s, n, replace=False)
            fid_draws.append(_fid_against(samples64[chosen], reference))
            kid_draws.append(kernels.mmd2(np.bincount(chosen, minlength=n_s), ones_r))
        fids.append(float(np.mean(fid_draws)))
        kids.append(float(np.mean(kid_draws)))
    return {
        "counts": usable,
        "fid": fids,
        "kid_mean": kids,
        "fid_inf": fid_infinity(usable, fids),
        "draws": draws,
        "seed": seed,
        "skipped": skipped,
    }


def fid_infinity(counts: Sequence[int], fids: Sequence[float]) -> float | None:
    """Intercept of the least-squares line FID = FID_inf + slope / N (None below 2 counts)."""
    if len(counts) < 2:
        return None
    slope, intercept = np.polyfit(1.0 / np.asarray(counts, float), np.asarray(fids, float), 1)
    return float(intercept)
