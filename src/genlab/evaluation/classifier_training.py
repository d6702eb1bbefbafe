"""Train, save and load the DomainClassifier that serves as an offline FID / IS / KID extractor.

A plain seeded PyTorch loop (no Lightning): it is a few seconds of work, and the metric it feeds
must be reproducible bit for bit from the same data and seed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab.checks import require_positive
from genlab.data.store import Split
from genlab.errors import ClassifierError
from genlab.io import save_torch
from genlab.networks.classifier import DomainClassifier, to_classifier_input

# What the classifier learns from labelled data (train_classifier records it; evaluate reads it).
SUPERVISED_OBJECTIVE = "supervised: the dataset's class labels"
_CONFIG_KEYS = ("in_channels", "num_classes", "feature_dim", "image_size")


def _check_splits(train: Split, test: Split) -> None:
    if train.images.shape[1:] != test.images.shape[1:]:
        raise ValueError(
            f"train and test images differ in shape: {train.images.shape[1:]} vs "
            f"{test.images.shape[1:]}"
        )
    for name, split in (("train", train), ("test", test)):
        if len(split.labels) == 0:
            raise ValueError(f"the {name} split is empty")
        if int(split.labels.min()) < 0:
            raise ValueError(f"the {name} split has unlabelled images (label -1); need labels")
    classes = np.unique(train.labels)
    if len(classes) < 2:
        raise ClassifierError(
            f"the training split has {len(classes)} class(es) ({classes.tolist()}); a classifier "
            f"needs at least 2 classes to learn anything, and its metrics would be meaningless. "
            f"Give the dataset one subfolder per class (at least two), or use metrics that need "
            f"no labels."
        )


def _padded_size(images: np.ndarray) -> int:
    """Smallest multiple of 8 covering the images (28x28 MNIST -> 32), as the CNN needs."""
    return int(math.ceil(max(images.shape[2:]) / 8) * 8)


def _batch(split: Split, index: torch.Tensor, model: DomainClassifier):
    images = torch.from_numpy(split.images[index.numpy()])
    x = to_classifier_input(images, model.in_channels, model.image_size)
    y = torch.from_numpy(split.labels[index.numpy()].astype(np.int64))
    return x, y


def _train_epoch(model, optimizer, train: Split, batch_size: int, generator) -> float:
    model.train()
    order = torch.randperm(len(train.labels), generator=generator)
    total, count = 0.0, 0
    for index in order.split(batch_size):
        x, y = _batch(train, index, model)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / count


@torch.no_grad()
def accuracy(model: DomainClassifier, split: Split, batch_size: int = 256) -> float:
    """Fraction of ``split`` the model labels correctly (eval mode)."""
    model.eval()
    correct = 0
    for index in torch.arange(len(split.labels)).split(batch_size):
        x, y = _batch(split, index, model)
        correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / len(split.labels)


def train_classifier(
    train: Split,
    test: Split,
    *,
    feature_dim: int = 128,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[DomainClassifier, dict]:
    """Train a DomainClassifier with Adam; same data and seed give the same weights."""
    require_positive(feature_dim=feature_dim, epochs=epochs, batch_size=batch_size)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    _check_splits(train, test)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = DomainClassifier(
            in_channels=int(train.images.shape[1]),
            num_classes=num_classes,
            feature_dim=feature_dim,
            image_size=_padded_size(train.images),
        )
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses = [
            _train_epoch(model, optimizer, train, batch_size, generator) for _ in range(epochs)
        ]
    model.eval()
    report = {
        "test_accuracy": accuracy(model, test),
        "train_loss": losses,
        "epochs": epochs,
        "num_train": int(len(train.labels)),
        "num_test": int(len(test.labels)),
        "num_classes": num_classes,
        "in_channels": model.in_channels,
        "image_size": model.image_size,
        "feature_dim": feature_dim,
        "batch_size": batch_size,
        "lr": float(lr),
        "seed": seed,
    }
    return model, report


def classifier_config(model: DomainClassifier) -> dict[str, int]:
    """Everything needed to rebuild the architecture before loading its weights."""
    return {key: int(getattr(model, key)) for key in _CONFIG_KEYS}


def save_classifier(model: DomainClassifier, path: str | os.PathLike, report: dict) -> None:
    """Write weights, architecture config and training report at once (atomically)."""
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": classifier_config(model),
        "report": report,
    }
    save_torch(payload, path)


def _fail(path: Path, problem: str) -> ClassifierError:
    return ClassifierError(
        f"{path} {problem}. Run the `train_classifier` stage to (re)create it "
        f"(`dvc repro train_classifier`)."
    )


def _read_payload(path: Path) -> dict:
    if not path.is_file():
        raise _fail(path, "does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, not a torch file...
        problem = f"is corrupt or not a classifier file ({type(error).__name__}: {error})"
        raise _fail(path, problem) from error
    if not isinstance(payload, dict) or not {"state_dict", "config"} <= payload.keys():
        raise _fail(path, "is not a genlab classifier file (no state_dict/config)")
    return payload


def load_classifier(path: str | os.PathLike) -> DomainClassifier:
    """Rebuild the classifier saved by ``save_classifier``, in eval mode."""
    path = Path(path)
    payload = _read_payload(path)
    try:
        config = {key: payload["config"][key] for key in _CONFIG_KEYS}
        model = DomainClassifier(**config)
        model.load_state_dict(payload["state_dict"])
    except Exception as error:  # missing keys, bad values, shape mismatches
        problem = f"does not match the classifier ({type(error).__name__}: {error})"
        raise _fail(path, problem) from error
    return model.eval()
