"""genlab's numbers equal torch-fidelity's own command-line tool on the same images.

The samples and reference images are written as PNG folders (lossless: torch-fidelity reads
back exactly the uint8 pixels genlab scored), ``fidelity``'s ``main`` scores the folders in a
subprocess, and ``compute_fidelity`` scores the arrays: any difference is genlab's.
"""

import genlab  # noqa: F401, I001  (must precede torchvision / torch_fidelity: installs the CPU shim)

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.sources.digits import DigitsSource
from genlab.data.store import Split
from genlab.evaluation.classifier_training import save_classifier, train_classifier
from genlab.evaluation.fidelity import EXTRACTORS, compute_fidelity

from ..unit.test_fidelity import _random_inception_weights

# The genlab extractor is registered in torch-fidelity's registry by importing genlab's module
# (and `import genlab` makes torchvision importable on a CPU torch): then fidelity's own main().
_FIDELITY_MAIN = (
    "import genlab.evaluation.feature_extractors; from torch_fidelity.fidelity import main; main()"
)


def _digits() -> dict[str, Split]:
    """The default dataset's splits (uint8 1x32x32), as the fetch stage makes them."""
    return DigitsSource().load()


def _write_pngs(images: np.ndarray, folder: Path) -> Path:
    """One PNG per image, named so that sorted order (torch-fidelity's) is the array order."""
    folder.mkdir()
    for index, image in enumerate(images):
        mode = "L" if image.shape[0] == 1 else "RGB"
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(pixels, mode=mode).save(folder / f"{index:06d}.png")
    return folder


def _run_fidelity(samples: np.ndarray, reference: np.ndarray, folder: Path, *arguments: str):
    """torch-fidelity's command line on PNG folders of ``samples`` and ``reference``."""
    inputs = [
        "--input1",
        str(_write_pngs(samples, folder / "samples")),
        "--input2",
        str(_write_pngs(reference, folder / "reference")),
    ]
    command = [sys.executable, "-c", _FIDELITY_MAIN, *inputs, *arguments]
    command += ["--json", "--silent", "--cpu"]
    command += ["--no-cache"]  # never read or write torch-fidelity's cache under the home
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ}, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{") :])


def _close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= 1e-4 * max(abs(theirs), 1e-6)


def test_pngs_round_trip_the_pixels_torch_fidelity_reads(tmp_path):
    from torch_fidelity.datasets import ImagesPathDataset

    grey = _digits()["train"].images[:5]
    rgb = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    for name, batch in (("grey", grey), ("rgb", rgb)):
        folder = _write_pngs(batch, tmp_path / name)
        dataset = ImagesPathDataset(sorted(str(p) for p in folder.iterdir()))
        for index, image in enumerate(batch):
            expected = torch.from_numpy(image).expand(3, -1, -1)  # genlab's grey -> RGB
            assert torch.equal(dataset[index], expected)


def test_classifier_scores_equal_the_torch_fidelity_command_line(tmp_path):
    splits = _digits()
    train, test = splits["train"], splits["test"]
    model, report = train_classifier(train, test, epochs=1, batch_size=64, seed=0)
    weights = tmp_path / "classifier.pt"
    save_classifier(model, weights, report)
    # samples: real digits of the classes 0-6 plus some noise, so no score is trivial
    real = train.images[train.labels < 7][:130]
    noise = np.random.default_rng(1).integers(0, 256, (20, 1, 32, 32), dtype=np.uint8)
    samples = np.concatenate([real, noise])
    reference = test.images[:120]
    subset = 100  # below both sizes: KID draws the same random subsets in both

    theirs = _run_fidelity(
        samples,
        reference,
        tmp_path,
        "--isc",
        "--fid",
        "--kid",
        "--prc",
        "--feature-extractor",
        EXTRACTORS["classifier"],
        "--feature-extractor-weights-path",
        str(weights),
        "--kid-subset-size",
        str(subset),
        "--prc-neighborhood",
        "3",
    )
    ours = compute_fidelity(
        samples,
        reference,
        extractor="classifier",
        weights_path=str(weights),
        kid_subset_size=subset,
        nearest_k=3,
    )
    pairs = {
        "fid": "frechet_inception_distance",
        "kid_mean": "kernel_inception_distance_mean",
        "kid_std": "kernel_inception_distance_std",
        "isc_mean": "inception_score_mean",
        "isc_std": "inception_score_std",
        "precision": "precision",
        "recall": "recall",
    }
    mismatched = {
        key: (ours[key], theirs[name])
        for key, name in pairs.items()
        if not _close(ours[key], theirs[name])
    }
    assert not mismatched, mismatched
    assert ours["fid"] > 1.0 and 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


@pytest.mark.slow
def test_inception_scores_equal_the_torch_fidelity_command_line(tmp_path):
    """inception-v3-compat with a local, randomly initialised InceptionV3 state dict (offline):
    the same FID / KID as the command line, and the file is flagged as not the published
    weights (so its numbers are not comparable with papers)."""
    weights = _random_inception_weights(tmp_path)
    images = _digits()["train"].images
    samples = images[:20]
    reference = images[100:120]
    theirs = _run_fidelity(
        samples,
        reference,
        tmp_path,
        "--fid",
        "--kid",
        "--feature-extractor",
        EXTRACTORS["inception"],
        "--feature-extractor-weights-path",
        weights,
        "--kid-subset-size",
        "20",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = compute_fidelity(
            samples, reference, extractor="inception", weights_path=weights, kid_subset_size=20
        )
    assert any("not torch-fidelity's InceptionV3" in str(w.message) for w in caught)
    assert ours["weights_known"] is False
    assert _close(ours["fid"], theirs["frechet_inception_distance"])
    assert _close(ours["kid_mean"], theirs["kernel_inception_distance_mean"])
    assert ours["fid"] > 0
