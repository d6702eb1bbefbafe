"""Per-class evaluation on real data and a real classifier: real images scored under their true
labels look like their class and like that class's test images; under wrong labels they do
not. Unconditional samples are grouped by the classifier's prediction; unlabelled data gets no
per-class section; conditional generators are sampled with balanced labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from genlab.data.store import Split, read_split, write_dataset
from genlab.evaluation.classifier_training import accuracy, load_classifier
from genlab.evaluation.memorization import fidelity_embedder
from genlab.evaluation.per_class import (
    GRID_SEEDS,
    class_rows,
    class_summary,
    classify,
    evaluate_per_class,
    grid_latents,
    grouped_grid,
    per_class_section,
)
from genlab.evaluation.settings import sample_images, sample_labels
from genlab.generate import ExportedGenerator, latent
from genlab.layout import class_grid
from genlab.metric_keys import (
    CLASS_ACCURACY,
    CLASSES_DRAWN,
    INTRA_CLASS_KID,
    PER_CLASS_ROW_KEYS,
    worst_class,
)
from genlab.models.standing_statistics import balanced_labels
from genlab.networks.dcgan import DCGANGenerator
from genlab.provenance import read_provenance

from ..support.training import train_quick_classifier

NAMES = [str(d) for d in range(10)]
SCORED = 300  # train images scored as "samples"


@pytest.fixture(scope="module")
def scored(tmp_path_factory, digits_dir):
    """A real classifier, SCORED train images as samples, the test split, and their features
    in the classifier feature space KID uses."""
    path = train_quick_classifier(tmp_path_factory.mktemp("classifier"), digits_dir)
    train, test = read_split(digits_dir, "train"), read_split(digits_dir, "test")
    images = torch.from_numpy(train.images[:SCORED])
    labels = torch.from_numpy(train.labels[:SCORED]).long()
    embed = fidelity_embedder("classifier", str(path))
    return {
        "classifier": load_classifier(path),
        "path": path,
        "images": images,
        "labels": labels,
        "test": test,
        "features": embed(images),
        "test_features": embed(torch.from_numpy(test.images)),
        "split_accuracy": accuracy(
            load_classifier(path), Split(train.images[:SCORED], train.labels[:SCORED])
        ),
    }


def rows_for(scored, sample_classes, conditional=True, memorized=None):
    predicted = classify(scored["classifier"], scored["images"], batch_size=64)
    return class_rows(
        NAMES,
        sample_classes,
        torch.from_numpy(scored["test"].labels),
        scored["features"],
        scored["test_features"],
        predicted=predicted,
        conditional=conditional,
        memorized=memorized,
        kid_subset_size=1000,
        kid_subsets=20,
    )


def test_true_labels_score_well_and_wrong_labels_do_not(scored):
    true_rows = rows_for(scored, scored["labels"])
    wrong_rows = rows_for(scored, (scored["labels"] + 1) % 10)  # every image under a wrong class
    true, wrong = class_summary(true_rows, True), class_summary(wrong_rows, True)

    # the classifier's accuracy on the images, per class then averaged: near its accuracy
    assert true[CLASS_ACCURACY] == pytest.approx(scored["split_accuracy"], abs=0.08)
    assert true[CLASS_ACCURACY] > 0.5
    # under a wrong label, only the classifier's mistakes can agree: far below chance's 0.1+
    assert wrong[CLASS_ACCURACY] < 0.2
    # a class's real images sit near that class's test images, not near another class's
    assert true[INTRA_CLASS_KID] < wrong[INTRA_CLASS_KID] / 3
    for good, bad in zip(true_rows, wrong_rows, strict=True):
        assert good["kid_mean"] < bad["kid_mean"], good["class"]
        assert list(good) == list(PER_CLASS_ROW_KEYS)


def test_counts_follow_the_labels_and_the_test_split(scored):
    rows = rows_for(scored, scored["labels"])
    assert [row["index"] for row in rows] == list(range(10))
    assert [row["class"] for row in rows] == NAMES
    assert [row["samples"] for row in rows] == np.bincount(
        scored["labels"].numpy(), minlength=10
    ).tolist()
    assert sum(row["samples"] for row in rows) == SCORED
    assert [row["test_images"] for row in rows] == np.bincount(
        scored["test"].labels, minlength=10
    ).tolist()


def test_memorized_fraction_is_the_share_of_the_class_flagged(scored):
    flagged = scored["labels"] == 3  # every image of class 3, none of the others
    rows = rows_for(scored, scored["labels"], memorized=flagged)
    assert [row["memorized_fraction"] for row in rows] == [
        1.0 if c == 3 else 0.0 for c in range(10)
    ]


def test_unconditional_samples_are_grouped_by_predicted_class(scored):
    predicted = classify(scored["classifier"], scored["images"], batch_size=64)
    rows = rows_for(scored, predicted, conditional=False)
    assert [row["samples"] for row in rows] == np.bincount(predicted.numpy(), minlength=10).tolist()
    assert all(row["accuracy"] is None for row in rows)
    summary = class_summary(rows, False)
    assert summary[CLASS_ACCURACY] is None and summary[INTRA_CLASS_KID] is not None
    section = per_class_section(rows, False, "x_classes.png")
    assert section["worst_class"] == max(rows, key=lambda row: row["kid_mean"])["class"]

    tiles = grouped_grid(scored["images"], predicted, 10)
    assert tiles.shape == (10 * GRID_SEEDS, *scored["images"].shape[1:])
    for c in range(10):
        mine = scored["images"][predicted == c][:GRID_SEEDS]
        row = tiles[c * GRID_SEEDS : (c + 1) * GRID_SEEDS]
        assert torch.equal(row[: len(mine)], mine)
        assert not row[len(mine) :].any()  # black where the class has fewer samples


def test_a_class_with_under_two_samples_gets_no_kid(scored):
    classes = torch.full((SCORED,), 1)
    classes[0] = 0  # class 0: one sample; classes 2..9: none
    rows = rows_for(scored, classes)
    assert rows[0]["samples"] == 1 and rows[0]["kid_mean"] is None
    assert rows[2]["samples"] == 0 and rows[2]["accuracy"] is None
    assert rows[1]["kid_mean"] is not None


def test_conditional_generator_gets_balanced_labels():
    torch.manual_seed(0)
    generator = DCGANGenerator(latent_dim=8, base_channels=8, num_classes=3).eval()
    with torch.no_grad():  # a fresh class embedding is the same for every class: make it differ
        for parameter in generator.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    labels = sample_labels(generator, 7)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    samples = sample_images(generator, 7, seed=5, batch_size=3)
    latents = torch.randn(7, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        one_by_one = [generator(latents[i : i + 1], labels[i : i + 1]) for i in range(7)]
        other_class = generator(latents[:1], torch.tensor([1]))
    expected = ((torch.cat(one_by_one) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert (samples.int() - expected.int()).abs().max() <= 1
    assert not torch.equal(samples[:1], _uint8(other_class))  # the label changes the image
    assert torch.equal(samples, sample_images(generator, 7, seed=5, batch_size=4))

    unconditional = DCGANGenerator(latent_dim=8, base_channels=8).eval()
    assert sample_labels(unconditional, 7) is None
    with torch.no_grad():
        direct = _uint8(unconditional(latents))
    assert (
        sample_images(unconditional, 7, seed=5, batch_size=3).int() - direct.int()
    ).abs().max() <= 1


def _uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def test_unlabelled_data_gets_no_per_class_section_and_one_grid_row(tmp_path, digits_dir):
    train, test = read_split(digits_dir, "train"), read_split(digits_dir, "test")
    unlabelled = tmp_path / "unlabelled"
    write_dataset(
        unlabelled,
        {
            "train": Split(train.images[:50], np.full(50, -1)),
            "test": Split(test.images[:20], np.full(20, -1)),
        },
        {"name": "unlabelled", "classes": []},
    )
    cfg = OmegaConf.create(
        {
            "data": {"dir": str(unlabelled)},
            "paths": {
                "metrics_dir": str(tmp_path / "metrics"),
                "run_name": "dcgan-0",
                "classifier": str(tmp_path / "none.pt"),
            },
            "evaluate": {"batch_size": 8, "kid_subset_size": 10, "kid_subsets": 2},
        }
    )
    generator = DCGANGenerator(latent_dim=8, base_channels=8).eval()
    samples = sample_images(generator, 10, seed=0, batch_size=5)
    section, summary = evaluate_per_class(
        cfg,
        generator,
        {"class_names": []},
        samples,
        None,
        read_split(unlabelled, "test"),
        torch.zeros(10, dtype=torch.bool),
        torch.zeros(10, 4),
        torch.zeros(20, 4),
        {"model": "dcgan", "seed": "0"},
    )
    assert section is None
    assert summary == {CLASS_ACCURACY: None, INTRA_CLASS_KID: None}
    grid = class_grid(cfg.paths.metrics_dir, cfg.paths.run_name)
    from PIL import Image

    with Image.open(grid) as image:
        assert image.height == 32 + 2 * 2  # one row of tiles (padding 2)
        assert image.width == GRID_SEEDS * (32 + 2) + 2
    assert read_provenance(grid)["content"].startswith("samples at latent seeds")


def test_an_unconditional_model_that_never_draws_a_class_names_it_worst(scored):
    """Classes 2..9 never drawn, class 0 once: they have no KID, so the mean intra-class KID is
    over class 1 only; the section says 1 of 10 classes was drawn and the worst class is one
    the model never draws (the fewest samples first), not the worst of the drawn ones."""
    classes = torch.full((SCORED,), 1)
    classes[0] = 0
    rows = rows_for(scored, classes, conditional=False)
    section = per_class_section(rows, False, "x_classes.png")
    assert section[CLASSES_DRAWN] == 1
    assert section["worst_class"] == "2"  # 0 samples (class 0 has 1): the first of the fewest
    assert class_summary(rows, False)[INTRA_CLASS_KID] == pytest.approx(rows[1]["kid_mean"])

    every = rows_for(scored, scored["labels"], conditional=False)
    section = per_class_section(every, False, "x_classes.png")
    assert section[CLASSES_DRAWN] == 10
    assert section["worst_class"] == max(every, key=lambda row: row["kid_mean"])["class"]


def test_worst_class_takes_an_undrawn_class_before_accuracy_and_kid():
    def row(name, samples, accuracy, kid):
        return {"class": name, "samples": samples, "accuracy": accuracy, "kid_mean": kid}

    rows = [row("a", 50, 0.2, 9.0), row("b", 1, None, None), row("c", 50, 0.9, 1.0)]
    assert worst_class(rows) == "b"
    assert worst_class([rows[0], rows[2]]) == "a"
    rows = [row("a", 1, None, None), row("b", 0, None, None), row("c", 3, None, 1.0)]
    assert worst_class(rows) == "b"


def test_the_class_grid_latents_are_those_of_genlab_generate_seeds():
    """The class grid's column s is what `genlab generate --seed s` draws: the two spell the
    same rule (a generator seeded with s), so this pins them together."""
    for dim in (8, 64):
        grid = grid_latents(dim)
        assert grid.shape == (GRID_SEEDS, dim)
        for seed in range(GRID_SEEDS):
            assert torch.equal(grid[seed], torch.from_numpy(latent(seed, dim))[0])


def test_generate_default_labels_are_the_pipelines_balanced_labels():
    for classes, count in ((3, 7), (10, 25), (2, 1)):
        exported = ExportedGenerator(
            run=lambda *inputs: [],
            metadata={},
            source=Path("g.onnx"),
            class_names=[f"c{i}" for i in range(classes)],
        )
        assert exported.default_labels(count) == balanced_labels(count, classes).tolist()
        assert exported.default_labels(count, 1) == [1] * count
