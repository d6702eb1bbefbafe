"""FID / IS / KID through torch-fidelity's own code, with real (tiny) feature extractors."""

import genlab  # noqa: F401, I001  (must precede torchvision / torch_fidelity: installs the CPU shim)

import math
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from genlab.data.store import Split
from genlab.evaluation.classifier_training import (
    ClassifierError,
    load_classifier,
    save_classifier,
    train_classifier,
)
from genlab.evaluation.fidelity import ImageTensorDataset, compute_fidelity
from genlab.networks.classifier import DomainClassifier


def _digits() -> tuple[Split, Split]:
    """scikit-learn's 1797 8x8 digits, upscaled to uint8 1x32x32, split 1437 / 360."""
    data = load_digits()
    x = torch.from_numpy(data.images).float()[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = data.target.astype(np.int64)
    order = np.random.RandomState(0).permutation(len(labels))
    train, test = order[:1437], order[1437:]
    return Split(images[train], labels[train]), Split(images[test], labels[test])


@pytest.fixture(scope="module")
def digits() -> tuple[Split, Split]:
    return _digits()


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory):
    train, test = digits
    model, report = train_classifier(train, test, epochs=2, batch_size=64, seed=0)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    save_classifier(model, path, report)
    return path, report, model


def _noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, size=(n, 1, 32, 32)).astype(np.uint8)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


# --- classifier -----------------------------------------------------------------------------


def test_classifier_learns_digits_and_round_trips(classifier, digits):
    path, report, model = classifier
    assert report["test_accuracy"] > 0.85
    assert (report["epochs"], report["num_train"], report["num_test"]) == (2, 1437, 360)
    assert (report["num_classes"], report["image_size"], report["in_channels"]) == (10, 32, 1)
    loaded = load_classifier(path)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
        assert loaded.features(x).shape == (4, 128)
    payload = torch.load(path, weights_only=True)
    assert payload["config"] == {
        "in_channels": 1,
        "num_classes": 10,
        "feature_dim": 128,
        "image_size": 32,
    }
    assert payload["report"]["test_accuracy"] == report["test_accuracy"]


def test_training_is_deterministic(digits):
    train, test = digits
    small = Split(train.images[:200], train.labels[:200])
    state = torch.get_rng_state()
    runs = [train_classifier(small, test, epochs=1, batch_size=50, seed=3)[0] for _ in range(2)]
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": -1}, "num_classes"),
        ({"feature_dim": 1.5}, "feature_dim"),
        ({"image_size": 30}, "image_size"),
    ],
)
def test_classifier_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DomainClassifier(**kwargs)


def test_load_classifier_errors_name_the_path_and_the_stage(classifier, tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ClassifierError, match="train_classifier") as error:
        load_classifier(missing)
    assert str(missing) in str(error.value)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(classifier[0].read_bytes()[:1000])
    with pytest.raises(ClassifierError, match="train_classifier") as error:
        load_classifier(truncated)
    assert str(truncated) in str(error.value)


# --- metrics with the classifier extractor --------------------------------------------------


def test_fid_kid_separate_real_from_noise_and_vanish_on_identical_sets(
    classifier, digits, no_network
):
    path = classifier[0]
    train, test = digits
    real = compute_fidelity(
        train.images[:500], test.images, extractor="classifier", weights_path=str(path)
    )
    noise = compute_fidelity(
        _noise(360), test.images, extractor="classifier", weights_path=str(path)
    )
    same = compute_fidelity(
        test.images, test.images, extractor="classifier", weights_path=str(path)
    )
    assert noise["fid"] > 20 * real["fid"] > 0
    assert noise["kid_mean"] > 20 * abs(real["kid_mean"])
    assert abs(same["fid"]) < 1e-3
    # KID's unbiased estimator is slightly negative for identical sets; ~0 on the noise scale.
    assert abs(same["kid_mean"]) < 1e-3 * noise["kid_mean"]
    assert (real["num_samples"], real["num_reference"], real["kid_subset_size"]) == (500, 360, 360)
    assert real["extractor"] == "classifier" and len(real["weights_sha256"]) == 64


def test_inception_score_of_digits_beats_a_single_repeated_image(classifier, digits):
    path = str(classifier[0])
    test = digits[1].images
    real = compute_fidelity(test, test, extractor="classifier", weights_path=path)
    one = compute_fidelity(
        np.repeat(test[:1], 100, axis=0), test, extractor="classifier", weights_path=path
    )
    assert real["isc_mean"] > 5
    assert one["isc_mean"] == pytest.approx(1.0, abs=1e-6)


def test_rgb_and_other_sizes_are_mapped_to_the_classifier_input(classifier, digits):
    path = str(classifier[0])
    gray = digits[1].images
    rgb = np.repeat(gray, 3, axis=1)
    assert abs(compute_fidelity(rgb, gray, extractor="classifier", weights_path=path)["fid"]) < 1e-3
    small = F.interpolate(torch.from_numpy(gray).float(), size=(24, 24), mode="bilinear")
    small = small.round().clamp(0, 255).to(torch.uint8)
    result = compute_fidelity(small, gray, extractor="classifier", weights_path=path)
    assert math.isfinite(result["fid"]) and result["fid"] > 0


def test_reference_statistics_are_cached_and_keyed_on_the_weights(
    classifier, digits, tmp_path, capfd
):
    path, report, model = classifier
    train, test = digits
    cache = tmp_path / "cache"
    kwargs = dict(extractor="classifier", cache_dir=str(cache), reference_cache_name="digits-test")

    first = compute_fidelity(train.images[:300], test.images, weights_path=str(path), **kwargs)
    files = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert files and all(name.startswith(first["reference_cache_key"]) for name in files)
    assert all(name.endswith(".safetensors") for name in files)  # tensors, never a pickle
    uncached = compute_fidelity(
        train.images[:300], test.images, weights_path=str(path), extractor="classifier"
    )
    assert (uncached["fid"], uncached["kid_mean"]) == (first["fid"], first["kid_mean"])

    capfd.readouterr()
    second = compute_fidelity(
        train.images[:300], test.images, weights_path=str(path), verbose=True, **kwargs
    )
    assert "Loading cached" in capfd.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == files
    assert second["fid"] == first["fid"] and second["kid_mean"] == first["kid_mean"]

    other = load_classifier(path)
    with torch.no_grad():
        other.head.bias.add_(0.5)
    other_path = tmp_path / "other.pt"
    save_classifier(other, other_path, report)
    third = compute_fidelity(
        train.images[:300], test.images, weights_path=str(other_path), **kwargs
    )
    assert third["reference_cache_key"] != first["reference_cache_key"]
    assert set(files) < {p.name for p in cache.iterdir()}
    assert third["weights_sha256"] != first["weights_sha256"]


def test_samples_are_never_cached(classifier, digits, tmp_path):
    train, test = digits
    cache = tmp_path / "cache"
    compute_fidelity(
        train.images[:50],
        test.images,
        extractor="classifier",
        weights_path=str(classifier[0]),
        cache_dir=str(cache),
    )
    names = [p.name for p in cache.iterdir()]
    assert names and all(name.startswith("reference-") for name in names)


def test_extractor_and_input_validation(classifier, digits):
    images = digits[1].images
    with pytest.raises(ValueError, match="classifier.*inception"):
        compute_fidelity(images, images, extractor="vgg16", weights_path=None)
    with pytest.raises(ValueError, match="train_classifier"):
        compute_fidelity(images, images, extractor="classifier", weights_path=None)
    with pytest.raises(ValueError, match="uint8"):
        compute_fidelity(
            images.astype(np.float32),
            images,
            extractor="classifier",
            weights_path=str(classifier[0]),
        )


def test_image_dataset_gives_torch_fidelity_uint8_rgb():
    images = _noise(5)
    dataset = ImageTensorDataset(images)
    assert len(dataset) == 5
    item = dataset[2]
    assert item.dtype == torch.uint8 and item.shape == (3, 32, 32)
    assert all(torch.equal(item[c], torch.from_numpy(images[2, 0])) for c in range(3))
    with pytest.raises(ValueError, match="uint8"):
        ImageTensorDataset(images.astype(np.int64))


def test_feature_extractor_registration_is_idempotent():
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from genlab.evaluation import feature_extractors

    feature_extractors.register()
    feature_extractors.register()
    registered = FEATURE_EXTRACTORS_REGISTRY[feature_extractors.CLASSIFIER_EXTRACTOR]
    assert registered is feature_extractors.FeatureExtractorDomainClassifier


# --- Inception ------------------------------------------------------------------------------


def _random_inception_weights(directory) -> str:
    """torch-fidelity's own InceptionV3 with kaiming-initialised convs, saved as its state dict.

    The class always loads a state dict in ``__init__``, so construction skips that step; the
    default init gives degenerate features (FID 0), hence the re-initialisation.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the random init; its state dict is what we save

    empty = directory / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    model = _Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = directory / "inception-random.pth"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.slow
def test_inception_extractor_offline_with_a_local_weights_file(digits, tmp_path, no_network):
    weights = _random_inception_weights(tmp_path)
    real = digits[1].images[:12]
    noise = _noise(12)
    different = compute_fidelity(
        noise, real, extractor="inception", weights_path=weights, batch_size=12
    )
    same = compute_fidelity(real, real, extractor="inception", weights_path=weights, batch_size=12)
    assert math.isfinite(different["fid"]) and different["fid"] > 1.0
    assert abs(same["fid"]) < 1e-3 * different["fid"]
    assert different["feature_extractor"] == "inception-v3-compat"
    assert different["kid_subset_size"] == 12 and different["isc_splits"] == 10


# --- precision / recall / density / coverage, intervals and sample counts on real images ---


def _scored(samples, reference, path, **kwargs) -> dict:
    return compute_fidelity(
        samples, reference, extractor="classifier", weights_path=str(path), nearest_k=3, **kwargs
    )


def test_manifold_known_answers_on_real_images(classifier, digits):
    from genlab.metric_keys import MANIFOLD_SCORES

    path = classifier[0]
    train, test = digits
    same = _scored(test.images, test.images, path)
    assert {key: same[key] for key in MANIFOLD_SCORES} == dict.fromkeys(MANIFOLD_SCORES, 1.0)
    # a "generator" that returns one real image: precise, and covers (almost) nothing
    one = _scored(np.repeat(test.images[:1], 100, axis=0), test.images, path)
    assert one["precision"] == 1.0
    assert one["recall"] < 0.02 and one["coverage"] < 0.02
    # a "generator" of the digits 0-4 only: half the real data's modes
    half = _scored(train.images[train.labels < 5], test.images, path)
    share = float(np.mean(test.labels < 5))
    assert half["coverage"] == pytest.approx(share, abs=0.1)
    assert half["recall"] == pytest.approx(share, abs=0.1)
    assert half["precision"] > 0.8
    # noise lies far from every digit: nothing of either set is in the other's balls
    noise = _scored(_noise(360), test.images, path)
    assert {key: noise[key] for key in MANIFOLD_SCORES} == dict.fromkeys(MANIFOLD_SCORES, 0.0)


def test_intervals_of_real_images_contain_the_floor(classifier, digits):
    """A set against itself: every interval holds the perfect score. Real train images against
    the test split: the FID interval holds the FID of other real train images (the floor)."""
    path = classifier[0]
    train, test = digits
    same = _scored(test.images, test.images, path, bootstrap_rounds=50, bootstrap_seed=0)
    assert abs(same["fid"]) < 1e-6 and same["intervals"]["fid"]["low"] == 0.0  # holds FID 0
    assert same["intervals"]["fid"]["high"] > 0
    for key in ("precision", "recall", "coverage"):
        assert same["intervals"][key]["high"] == 1.0
    assert same["intervals"]["density"]["low"] <= 1.0 <= same["intervals"]["density"]["high"]
    assert same["bootstrap"]["rounds"] == 50 and same["bootstrap"]["method"]
    # two disjoint draws of 700 real train images, each scored against the test split: each
    # one's FID / KID interval holds the other's score (what a perfect generator would get)
    first, second = train.images[:700], train.images[700:1400]
    scored = [
        _scored(images, test.images, path, bootstrap_rounds=100) for images in (first, second)
    ]
    for this, other in (scored, scored[::-1]):
        for key in ("fid", "kid_mean"):
            assert this["intervals"][key]["low"] <= other[key] <= this["intervals"][key]["high"]
    noise = _scored(_noise(360), test.images, path)
    assert noise["fid"] > 5 * max(this["intervals"]["fid"]["high"] for this in scored)


def test_sample_count_curve_through_compute_fidelity(classifier, digits):
    path = classifier[0]
    train, test = digits
    result = _scored(train.images[:300], test.images, path, sample_counts=(100, 200, 5000))
    curve = result["curve"]
    assert curve["counts"] == [100, 200, 300] and curve["skipped"] == [5000]
    assert curve["fid"][-1] == pytest.approx(result["fid"], rel=1e-6)
    assert result["fid_inf"] == curve["fid_inf"] < result["fid"]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"bootstrap_rounds": 1}, "rounds"),
        ({"bootstrap_rounds": 10, "bootstrap_level": 1.5}, "level"),
        ({"nearest_k": 400}, "nearest_k"),
        ({"sample_counts": (100,), "sample_count_draws": 0}, "sample_count_draws"),
    ],
)
def test_bad_spread_settings_are_refused_naming_the_setting(classifier, digits, settings, named):
    test = digits[1].images
    with pytest.raises(ValueError, match=named):
        compute_fidelity(
            test, test, extractor="classifier", weights_path=str(classifier[0]), **settings
        )


def test_a_local_inception_file_is_known_only_by_its_full_sha256(tmp_path):
    """torch-fidelity's weights are known by their whole sha256 (not the 8 hex digits in the
    file name); another file warns that its scores are not comparable; downloaded weights are
    recorded as unchecked (None)."""
    from genlab.evaluation import fidelity

    path = tmp_path / f"weights-inception-2015-12-05-{fidelity.INCEPTION_SHA256[:8]}.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, path)  # the right name, other bytes
    with pytest.warns(UserWarning, match="not torch-fidelity's InceptionV3 weights"):
        _, sha, _ = fidelity._resolve_weights("inception", str(path))
    assert fidelity.inception_weights_known(sha) is False
    assert fidelity.inception_weights_known(fidelity.INCEPTION_SHA256) is True
    assert fidelity.inception_weights_known(None) is None


def test_kid_from_features_is_compute_fidelitys_kid(classifier, digits):
    """The per-class KID (features embedded once, then split by class) is the KID that
    compute_fidelity reports for the same two sets, subset size capped alike."""
    from genlab.evaluation.fidelity import kid_from_features
    from genlab.evaluation.memorization import fidelity_embedder

    path = str(classifier[0])
    train, test = digits
    samples, reference = train.images[:80], test.images[:50]
    scored = compute_fidelity(
        samples, reference, extractor="classifier", weights_path=path, kid_subsets=20
    )
    embed = fidelity_embedder("classifier", path)
    kid = kid_from_features(
        embed(torch.from_numpy(samples)),
        embed(torch.from_numpy(reference)),
        kid_subset_size=1000,
        kid_subsets=20,
    )
    assert kid["kid_subset_size"] == scored["kid_subset_size"] == 50
    assert kid["kid_mean"] == pytest.approx(scored["kid_mean"], rel=1e-5, abs=1e-7)
    assert kid["kid_std"] == pytest.approx(scored["kid_std"], rel=1e-5, abs=1e-7)
    one = kid_from_features(
        embed(torch.from_numpy(samples[:1])),
        embed(torch.from_numpy(reference)),
        kid_subset_size=10,
        kid_subsets=2,
    )
    assert one["kid_mean"] is None and one["kid_std"] is None  # unbiased KID needs 2 samples
