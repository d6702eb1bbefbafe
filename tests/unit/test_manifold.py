"""Precision / recall / density / coverage: equal to torch-fidelity's prc and the prdc package,
and the known answers (identical, disjoint, collapsed and half-covering sets)."""

import genlab  # noqa: F401, I001  (must precede torchvision / torch_fidelity: installs the CPU shim)

import numpy as np
import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_prc import prc_features_to_metric

from genlab.evaluation.manifold import ManifoldDistances, manifold_scores
from genlab.metric_keys import MANIFOLD_SCORES


def _reference_libraries(samples: np.ndarray, reference: np.ndarray, k: int) -> dict[str, float]:
    """Precision / recall from torch-fidelity, density / coverage from prdc (real first)."""
    prc = prc_features_to_metric(
        torch.from_numpy(samples), torch.from_numpy(reference), prc_neighborhood=k, verbose=False
    )
    prdc = compute_prdc(real_features=reference, fake_features=samples, nearest_k=k)
    return {
        "precision": prc["precision"],
        "recall": prc["recall"],
        "density": float(prdc["density"]),
        "coverage": float(prdc["coverage"]),
    }


def _scores(samples: np.ndarray, reference: np.ndarray, k: int) -> dict[str, float]:
    return manifold_scores(torch.from_numpy(samples), torch.from_numpy(reference), k)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_scores_equal_torch_fidelity_prc_and_prdc_on_random_features(k):
    rng = np.random.default_rng(k)
    reference = rng.normal(size=(150, 16)).astype(np.float32)
    samples = (rng.normal(size=(200, 16)) * 1.3 + 0.4).astype(np.float32)  # partly off
    ours = _scores(samples, reference, k)
    theirs = _reference_libraries(samples, reference, k)
    assert ours == pytest.approx(theirs, abs=1e-6)  # tf: a float32 mean
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1  # not a trivial case


def test_ties_are_scored_as_each_library_scores_them():
    """Integer features: many distances equal a radius exactly (computed exactly in float32).
    torch-fidelity's balls are closed (<=), prdc's open (<): each score follows its library."""
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 4, size=(150, 3)).astype(np.float32)
    reference = rng.integers(0, 4, size=(120, 3)).astype(np.float32)
    ours = _scores(samples, reference, 3)
    assert ours == pytest.approx(_reference_libraries(samples, reference, 3), abs=1e-6)


def test_identical_sets_score_one():
    features = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    scores = _scores(features, features.copy(), 3)
    assert scores == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_far_apart_sets_score_zero():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 8)).astype(np.float32)
    samples = rng.normal(size=(200, 8)).astype(np.float32) + 100.0
    assert _scores(samples, reference, 3) == dict.fromkeys(MANIFOLD_SCORES, 0.0)


def _clusters(rng, centres: np.ndarray, per_cluster: int) -> np.ndarray:
    shape = (len(centres), per_cluster, centres.shape[1])
    points = centres[:, None, :] + 0.3 * rng.normal(size=shape)
    return points.reshape(-1, centres.shape[1]).astype(np.float32)


def test_a_generator_of_one_real_image_is_precise_but_covers_nothing():
    rng = np.random.default_rng(3)
    reference = _clusters(rng, 10.0 * rng.normal(size=(10, 8)), 30)
    collapsed = np.repeat(reference[:1], 100, axis=0)  # every sample the same real image
    scores = _scores(collapsed, reference, 3)
    n = len(reference)
    assert scores["precision"] == 1.0
    assert scores["recall"] == 1 / n  # the balls have radius 0: only the image itself
    assert scores["coverage"] <= 3 / n  # only the references whose ball holds the image


def test_covering_half_of_the_clusters_gives_coverage_and_recall_near_one_half():
    rng = np.random.default_rng(4)
    centres = 10.0 * rng.normal(size=(10, 4))
    reference = _clusters(rng, centres, 40)
    samples = _clusters(rng, centres[:5], 80)  # fresh draws from half the clusters
    scores = _scores(samples, reference, 5)
    # the missed clusters are far away: neither can pass one half; the covered ones are
    # (nearly) all reached
    assert 0.47 <= scores["coverage"] <= 0.5
    assert 0.45 <= scores["recall"] <= 0.5
    assert scores["precision"] > 0.9  # what it makes is real; it just misses half


def test_resampling_counts_equal_scoring_the_repeated_set_itself():
    """A bootstrap round (counts) scores as the explicit resampled set would, with a point's
    own copies kept out of its radius; with no repeats that is the plain score."""
    rng = np.random.default_rng(5)
    samples = rng.normal(size=(60, 4)).astype(np.float32)
    reference = rng.normal(size=(50, 4)).astype(np.float32)
    distances = ManifoldDistances(torch.from_numpy(samples), torch.from_numpy(reference), 3)
    ones_s, ones_r = np.ones(60, np.int64), np.ones(50, np.int64)
    assert distances.scores(ones_s, ones_r) == _scores(samples, reference, 3)
    # dropping points (count 0) is scoring the smaller sets
    keep_s, keep_r = rng.random(60) < 0.7, rng.random(50) < 0.7
    dropped = distances.scores(keep_s.astype(np.int64), keep_r.astype(np.int64))
    assert dropped == pytest.approx(_scores(samples[keep_s], reference[keep_r], 3), abs=1e-12)


@pytest.mark.parametrize("k", [0, 10])
def test_a_neighbourhood_too_small_or_too_large_is_refused_naming_nearest_k(k):
    features = torch.randn(10, 4)
    with pytest.raises(ValueError, match="nearest_k"):
        ManifoldDistances(features, torch.randn(20, 4), k)


def test_radii_beyond_the_kept_neighbours_fall_back_to_the_full_row():
    """A resample that draws few points leaves most k-NN radii beyond the 64 neighbours kept
    per point: those rows are recomputed, and the scores equal scoring the drawn points."""
    rng = np.random.default_rng(7)
    samples = rng.normal(size=(400, 8)).astype(np.float32)
    reference = (rng.normal(size=(300, 8)) * 1.2).astype(np.float32)
    distances = ManifoldDistances(torch.from_numpy(samples), torch.from_numpy(reference), 3)
    drawn_s, drawn_r = rng.choice(400, 12, replace=False), rng.choice(300, 9, replace=False)
    counts_s = np.bincount(drawn_s, minlength=400)
    counts_r = np.bincount(drawn_r, minlength=300)
    assert distances.scores(counts_s, counts_r) == pytest.approx(
        _scores(samples[np.sort(drawn_s)], reference[np.sort(drawn_r)], 3), abs=1e-12
    )
