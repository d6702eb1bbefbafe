"""The memorization check flags a generator that returns training images, not one that returns
noise, and flags about the calibration quantile of real held-out images."""

from __future__ import annotations

import pytest
import torch

from genlab.evaluation.memorization import fidelity_embedder, measure_memorization

from .test_fidelity import classifier, digits  # noqa: F401 - module fixtures reused


@pytest.fixture(scope="module")
def embed(classifier):  # noqa: F811
    path, _, _ = classifier
    return fidelity_embedder("classifier", str(path), batch_size=128)


def as_tensor(split) -> torch.Tensor:
    return torch.from_numpy(split.images)


def test_a_generator_that_returns_training_images_is_flagged(digits, embed):  # noqa: F811
    train, test = (as_tensor(s) for s in digits)
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:300]]
    measured = measure_memorization(copies, train, test, embed, num_pairs=8)
    report, pairs = measured.report, measured.pairs
    for space in ("feature", "pixel"):
        assert report[space]["fraction_below_threshold"] > 0.95, (space, report[space])
        assert report[space]["closest_sample_distance"] == 0.0
        assert report[space]["threshold"] > 0
    assert pairs.shape == (16, *train.shape[1:]) and pairs.dtype == torch.uint8
    assert torch.equal(pairs[0], pairs[1]), "a copied sample sits beside its training image"


def test_a_noise_generator_is_not_flagged(digits, embed):  # noqa: F811
    train, test = (as_tensor(s) for s in digits)
    noise = torch.randint(0, 256, (300, *train.shape[1:]), dtype=torch.uint8)
    report = measure_memorization(noise, train, test, embed).report
    for space in ("feature", "pixel"):
        assert report[space]["fraction_below_threshold"] == 0.0, (space, report[space])
        assert report[space]["sample_nn_median"] > report[space]["test_nn_median"]


def test_held_out_real_images_are_flagged_at_about_the_quantile(digits, embed):  # noqa: F811
    train, test = (as_tensor(s) for s in digits)
    report = measure_memorization(test, train, test, embed, quantile=0.1).report
    assert report["expected_fraction_for_real_data"] == 0.1
    for space in ("feature", "pixel"):
        assert report[space]["fraction_below_threshold"] == pytest.approx(0.1, abs=0.01)


def test_quantile_must_be_a_fraction(digits, embed):  # noqa: F811
    train, test = (as_tensor(s) for s in digits)
    with pytest.raises(ValueError, match=r"memorization quantile must be in \(0, 1\)"):
        measure_memorization(test, train, test, embed, quantile=1.5)
