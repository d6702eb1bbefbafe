"""Bootstrap intervals, the sample-count curve and FID_inf: known answers, torch-fidelity's
own estimators as the reference, determinism, and refused settings."""

import genlab  # noqa: F401, I001  (must precede torchvision / torch_fidelity: installs the CPU shim)

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kernel_poly, kid_features_to_metric, mmd2

from genlab.evaluation.manifold import manifold_scores
from genlab.evaluation.uncertainty import (
    KernelSums,
    bootstrap_intervals,
    fid_infinity,
    fid_of,
    sample_count_curve,
)
from genlab.metric_keys import INTERVAL_SCORES


def _heavy_tailed(rng: np.random.Generator, n: int, shift: float = 0.0) -> torch.Tensor:
    """A fixed, non-Gaussian distribution (Student t, unequal scales) to draw sets from."""
    scales = np.diag(np.linspace(0.5, 2.0, 8))
    return torch.from_numpy(rng.standard_t(5, size=(n, 8)) @ scales + shift)


def _point(samples: torch.Tensor, reference: torch.Tensor, k: int = 3) -> dict[str, float]:
    ones_s, ones_r = np.ones(len(samples)), np.ones(len(reference))
    return {
        "fid": fid_of(samples, reference),
        "kid_mean": KernelSums(samples, reference).mmd2(ones_s, ones_r),
        **manifold_scores(samples, reference, k),
    }


def _intervals(samples, reference, rounds=100, seed=0, **kwargs):
    point = _point(samples, reference)
    return bootstrap_intervals(
        samples, reference, point, rounds=rounds, level=0.95, seed=seed, nearest_k=3, **kwargs
    )


# --- the estimators against torch-fidelity ---------------------------------------------------


def test_kernel_sums_with_every_point_once_equal_torch_fidelity_kid():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 16)), rng.normal(size=(120, 16)) + 0.2
    ones = np.ones(120, np.int64)
    ours = KernelSums(torch.from_numpy(x), torch.from_numpy(y)).mmd2(ones, ones)
    theirs = mmd2(kernel_poly(x, x), kernel_poly(x, y), kernel_poly(y, y))
    assert ours == pytest.approx(float(theirs), rel=1e-10)
    # and KID itself: one subset of the whole set is the whole set, in some order
    kid = kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1, kid_subset_size=120, verbose=False
    )
    assert ours == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-10)


def test_kernel_sums_with_counts_equal_the_explicit_resample_without_self_pairs():
    """A bootstrap round's counts score the repeated set, leaving out only each copy's pairs
    with copies of the same point (the diagonal the unbiased estimator leaves out)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    cx, cy = rng.integers(0, 3, 30), rng.integers(0, 3, 25)
    ours = KernelSums(torch.from_numpy(x), torch.from_numpy(y)).mmd2(cx, cy)
    ix, iy = np.repeat(np.arange(30), cx), np.repeat(np.arange(25), cy)
    xs, ys = x[ix], y[iy]

    def within(points, index):
        kernel = kernel_poly(points, points)
        other = index[:, None] != index[None, :]
        return kernel[other].sum() / (len(index) ** 2 - (np.bincount(index) ** 2).sum())

    expected = within(xs, ix) + within(ys, iy) - 2 * kernel_poly(xs, ys).mean()
    assert ours == pytest.approx(expected, rel=1e-10)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(2)
    x = _heavy_tailed(rng, 200)
    assert abs(fid_of(x, x.clone())) < 1e-8
    assert fid_of(x + 1.0, x) == pytest.approx(8.0, rel=1e-8)  # |mean shift|^2 in 8 dims


# --- bootstrap -------------------------------------------------------------------------------


def test_interval_of_a_set_against_itself_contains_the_floor():
    x = _heavy_tailed(np.random.default_rng(3), 200)
    intervals = _intervals(x, x.clone())
    assert set(intervals) == set(INTERVAL_SCORES)
    assert intervals["fid"]["low"] == 0.0 < intervals["fid"]["high"]  # FID 0 is inside
    assert intervals["kid_mean"]["low"] < 0 < intervals["kid_mean"]["high"]
    for key in ("precision", "recall", "coverage"):
        assert intervals[key]["low"] < 1.0 == intervals[key]["high"]
    assert intervals["density"]["low"] < 1.0 < intervals["density"]["high"]


def test_real_vs_real_intervals_contain_another_real_samples_score():
    """Samples drawn from the reference's own distribution: the 95% interval should hold the
    score of another real draw (the floor) about 95% of the time, and should not hold the score
    of a visibly different distribution most of the time."""
    trials, floor_inside, other_inside = 20, dict.fromkeys(INTERVAL_SCORES, 0), 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        samples, reference, floor = (_heavy_tailed(rng, 300) for _ in range(3))
        shifted = _heavy_tailed(rng, 300, shift=0.4)
        intervals = _intervals(samples, reference, rounds=200, seed=seed)
        floor_scores = _point(floor, reference)
        for key, interval in intervals.items():
            floor_inside[key] += interval["low"] <= floor_scores[key] <= interval["high"]
        fid = intervals["fid"]
        other_inside += fid["low"] <= fid_of(shifted, reference) <= fid["high"]
    assert all(count >= 16 for count in floor_inside.values()), floor_inside
    assert other_inside <= 8


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(4)
    x, y = _heavy_tailed(rng, 100), _heavy_tailed(rng, 120)
    first, again = _intervals(x, y, rounds=20, seed=7), _intervals(x, y, rounds=20, seed=7)
    assert first == again
    assert _intervals(x, y, rounds=20, seed=8) != first


def test_bootstrap_without_nearest_k_gives_fid_and_kid_only():
    rng = np.random.default_rng(5)
    x, y = _heavy_tailed(rng, 50), _heavy_tailed(rng, 50)
    point = {"fid": fid_of(x, y), "kid_mean": 0.0}
    intervals = bootstrap_intervals(x, y, point, rounds=5, level=0.9, seed=0, nearest_k=None)
    assert set(intervals) == {"fid", "kid_mean"}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"rounds": 1}, "rounds"),
        ({"rounds": 0}, "rounds"),
        ({"level": 0.0}, "level"),
        ({"level": 1.0}, "level"),
        ({"level": 1.5}, "level"),
        ({"nearest_k": 40}, "nearest_k"),
        ({"nearest_k": 0}, "nearest_k"),
    ],
)
def test_bad_bootstrap_settings_are_refused_naming_the_setting(settings, named):
    rng = np.random.default_rng(6)
    x, y = _heavy_tailed(rng, 40), _heavy_tailed(rng, 50)
    arguments = {"rounds": 10, "level": 0.95, "seed": 0, "nearest_k": 3, **settings}
    with pytest.raises(ValueError, match=named):
        bootstrap_intervals(x, y, {"fid": 1.0, "kid_mean": 0.0}, **arguments)


# --- sample count ----------------------------------------------------------------------------


def test_fid_infinity_recovers_the_intercept_of_an_exact_series():
    counts = [250, 500, 750, 1000]
    assert fid_infinity(counts, [3.5 + 1200.0 / n for n in counts]) == pytest.approx(3.5)
    assert fid_infinity([100, 1000], [12.0, 3.0]) == pytest.approx(2.0)
    assert fid_infinity([500], [4.0]) is None  # one count: no line


def test_sample_count_curve_skips_counts_above_the_set_size():
    rng = np.random.default_rng(7)
    x, y = _heavy_tailed(rng, 120), _heavy_tailed(rng, 150)
    curve = sample_count_curve(x, y, [40, 80, 500], draws=3, seed=0)
    assert curve["counts"] == [40, 80, 120] and curve["skipped"] == [500]
    assert curve["draws"] == 3
    # the whole set is scored exactly once: its FID and KID are the plain ones
    assert curve["fid"][-1] == pytest.approx(fid_of(x, y), rel=1e-12)
    whole_kid = KernelSums(x, y).mmd2(np.ones(120), np.ones(150))
    assert curve["kid_mean"][-1] == pytest.approx(whole_kid, rel=1e-12)
    # FID's small-sample bias: fewer samples, higher FID; FID_inf lies below the whole set's
    assert curve["fid"][0] > curve["fid"][1] > curve["fid"][2]
    assert curve["fid_inf"] < curve["fid"][2]
    assert curve["fid_inf"] == pytest.approx(fid_infinity(curve["counts"], curve["fid"]))
    assert sample_count_curve(x, y, [40, 80, 500], draws=3, seed=0) == curve


def test_fid_inf_of_real_vs_real_is_nearer_zero_than_fid():
    """Two draws of one distribution: FID's whole bias is the 1/N term, which FID_inf removes."""
    rng = np.random.default_rng(8)
    x, y = _heavy_tailed(rng, 1000), _heavy_tailed(rng, 4000)
    curve = sample_count_curve(x, y, [250, 500, 750], draws=3, seed=0)
    assert abs(curve["fid_inf"]) < 0.5 * curve["fid"][-1]


def test_a_round_that_draws_one_point_has_no_kid_and_no_nan_interval():
    """Two samples: some rounds draw the same one twice (no distinct pairs, so no unbiased KID);
    those rounds are left out instead of turning the interval into NaN."""
    rng = np.random.default_rng(3)
    samples = torch.from_numpy(rng.normal(size=(2, 4)))
    reference = torch.from_numpy(rng.normal(size=(40, 4)))
    point = {"fid": fid_of(samples, reference), "kid_mean": 0.0}
    intervals = bootstrap_intervals(
        samples, reference, point, rounds=50, level=0.9, seed=0, nearest_k=None
    )
    kid = intervals["kid_mean"]
    assert kid is not None and all(np.isfinite([kid["low"], kid["high"], kid["std"]]))
    assert np.isnan(KernelSums(samples, reference).mmd2(np.array([2, 0]), np.ones(40, int)))
