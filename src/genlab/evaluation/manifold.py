"""Precision, recall, density and coverage: fidelity and diversity measured apart.

Precision and recall are Kynkäänniemi et al. (2019) exactly as torch-fidelity's ``prc``
computes them (a point is inside a k-NN ball when its distance is ``<=`` the ball's radius);
density and coverage are Naeem et al. (2020), as the ``prdc`` package computes them (strictly
``<`` the radius: a set scored against itself gets density exactly 1, not (k + 1) / k). One
implementation serves the point estimate and every bootstrap round: a sample set is the
precomputed distance matrices plus a count per point (1 for the set itself, the number of times
a point was drawn for a bootstrap resample). A point's k-NN radius counts every drawn copy of
the other points but never the copies of itself, so resampling with replacement does not shrink
the balls to zero. Tests check the point estimate against torch-fidelity and ``prdc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Nearest neighbours kept per point for the radius lookup (memory n x 64, not n x n: a 10,000
# image test split fits); a resample that leaves a point fewer than k drawn neighbours among
# them recomputes that point's full row from the features.
_NEAREST_KEPT = 64
_ROWS_PER_BLOCK = 1024


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances as torch.cdist computes them (torch-fidelity's prc uses cdist)."""
    return torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).numpy()


@dataclass(frozen=True)
class _Neighbours:
    """Each point's nearest *other* points of its own set, nearest first."""

    features: np.ndarray  # (n, d), for the rare full-row fallback
    order: np.ndarray  # (n, kept) indices of the nearest other points
    distance: np.ndarray  # (n, kept) their distances

    @classmethod
    def within(cls, features: np.ndarray) -> _Neighbours:
        n = features.shape[0]
        kept = min(_NEAREST_KEPT, n - 1)
        orders, distances = [], []
        for start in range(0, n, _ROWS_PER_BLOCK):
            rows = np.arange(start, min(start + _ROWS_PER_BLOCK, n))
            order, distance = cls._sorted_row(features, rows, kept)
            orders.append(order)
            distances.append(distance)
        return cls(features, np.concatenate(orders), np.concatenate(distances))

    @staticmethod
    def _sorted_row(
        features: np.ndarray, rows: np.ndarray, kept: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``kept`` nearest other points of ``rows``, nearest first (ties by index)."""
        d = _pairwise(features[rows], features)
        d[np.arange(rows.size), rows] = np.inf  # a point is never its own neighbour
        if kept < d.shape[1] - 1:
            part = np.argpartition(d, kept - 1, axis=1)[:, :kept]
            part_d = np.take_along_axis(d, part, axis=1)
            # stable: equal distances keep index order, as a full stable argsort would
            by_index = np.argsort(part, axis=1, kind="stable")
            part = np.take_along_axis(part, by_index, axis=1)
            part_d = np.take_along_axis(part_d, by_index, axis=1)
            order = np.take_along_axis(part, np.argsort(part_d, axis=1, kind="stable"), axis=1)
        else:
            order = np.argsort(d, axis=1, kind="stable")[:, :kept]
        return order, np.take_along_axis(d, order, axis=1)

    def radii(self, counts: np.ndarray, k: int) -> np.ndarray:
        """Distance to the k-th nearest drawn copy of another point (inf when fewer than k)."""
        n = self.order.shape[0]
        radii = self._radii(counts, k, self.order, self.distance)
        missing = np.flatnonzero(~np.isfinite(radii))
        if missing.size and self.order.shape[1] < n - 1:
            order, distance = self._sorted_row(self.features, missing, n - 1)
            radii[missing] = self._radii(counts, k, order, distance)
        return radii

    @staticmethod
    def _radii(counts: np.ndarray, k: int, order: np.ndarray, distance: np.ndarray) -> np.ndarray:
        reached = np.cumsum(counts[order], axis=1) >= k
        first = reached.argmax(axis=1)
        radii = distance[np.arange(order.shape[0]), first]
        return np.where(reached.any(axis=1), radii, np.inf)


class ManifoldDistances:
    """The distances precision / recall / density / coverage need, computed once per pair of
    sets; ``scores`` then costs O(samples x reference) for any resample of either set."""

    def __init__(self, sample_features: torch.Tensor, reference_features: torch.Tensor, k: int):
        if k < 1:
            raise ValueError(f"the neighbourhood size nearest_k must be at least 1, got {k}")
        samples = sample_features.detach().cpu().to(torch.float32).numpy()
        reference = reference_features.detach().cpu().to(torch.float32).numpy()
        smallest = min(samples.shape[0], reference.shape[0])
        if smallest <= k:
            raise ValueError(
                f"precision / recall / density / coverage need more than nearest_k={k} points "
                f"in each set, got {samples.shape[0]} samples and {reference.shape[0]} reference "
                f"images: lower nearest_k (evaluate.nearest_k) or score more images"
            )
        self.k = k
        self.sample_count = samples.shape[0]
        self.reference_count = reference.shape[0]
        self.samples = _Neighbours.within(samples)
        self.reference = _Neighbours.within(reference)
        # (samples, reference), computed reference-first as torch-fidelity and prdc compute it:
        # a sample equal to a reference point then lies exactly on the radii the reference's
        # own distances give (cdist's matmul path is not symmetric to the last bit)
        self.cross = np.ascontiguousarray(_pairwise(reference, samples).T)

    def scores(
        self, sample_counts: np.ndarray | None = None, reference_counts: np.ndarray | None = None
    ) -> dict[str, float]:
        """The four scores of the sets drawn with these multiplicities (None: each point once)."""
        cs, cr = sample_counts, reference_counts
        cs = np.ones(self.sample_count, np.int64) if cs is None else cs
        cr = np.ones(self.reference_count, np.int64) if cr is None else cr
        k = self.k
        sample_radii = self.samples.radii(cs, k)
        reference_radii = self.reference.radii(cr, k)
        drawn_s, drawn_r = cs > 0, cr > 0
        # inside[i, j]: sample i lies in reference j's ball (only drawn references have balls);
        # closed balls (<=) for precision as torch-fidelity, open ones (<) for density as prdc
        inside = (self.cross <= reference_radii[None, :]) & drawn_r[None, :]
        strictly_inside = (self.cross < reference_radii[None, :]) & drawn_r[None, :]
        # reached[i, j]: reference j lies in sample i's ball (recall's balls are the samples')
        reached = (self.cross <= sample_radii[:, None]) & drawn_s[:, None]
        nearest_sample = np.where(drawn_s[:, None], self.cross, np.inf).min(axis=0)
        total_s, total_r = cs.sum(), cr.sum()
        return {
            "precision": float(cs @ inside.any(axis=1) / total_s),
            "recall": float(cr @ reached.any(axis=0) / total_r),
            "density": float(cs @ (strictly_inside @ cr) / (k * total_s)),
            "coverage": float(cr @ (nearest_sample < reference_radii) / total_r),
        }


def manifold_scores(
    sample_features: torch.Tensor, reference_features: torch.Tensor, k: int
) -> dict[str, float]:
    """Precision, recall, density and coverage of samples (fake) against a reference (real)."""
    return ManifoldDistances(sample_features, reference_features, k).scores()
