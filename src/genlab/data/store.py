"""The one on-disk dataset format every stage after fetch reads.

``<dir>/train.npz`` and ``<dir>/test.npz`` each hold ``images`` (uint8, N x C x H x W) and
``labels`` (int64, N; -1 where unlabelled); ``<dir>/meta.json`` says where the data came from.
Everything downstream is dataset-agnostic because of this.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.checks import printable
from genlab.errors import DatasetError
from genlab.io import atomic_dir, file_digest, write_json
from genlab.layout import DATA_META_FILE, SPLIT_FILE

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N x C x H x W
    labels: np.ndarray  # int64, N

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DatasetError(
                f"images must be uint8 N x C x H x W, got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetError(
                f"labels shape {self.labels.shape} does not match {self.images.shape[0]} images"
            )


def write_dataset(
    directory: str | os.PathLike,
    splits: dict[str, Split],
    meta: dict[str, Any],
    extra_files: dict[str, Any] | None = None,
) -> None:
    """Write all splits and the metadata at once: either the whole dataset appears or none.

    ``extra_files`` ({name: JSON-able}) land beside them (a manifest, a duplicate report).
    """
    missing = set(SPLITS) - set(splits)
    if missing:
        raise DatasetError(f"dataset is missing splits: {sorted(missing)}")
    first = splits["train"].images
    meta = {
        **meta,
        "channels": int(first.shape[1]),
        "image_size": int(first.shape[2]),
        "counts": {name: int(split.images.shape[0]) for name, split in splits.items()},
        "num_classes": _class_count(splits, meta),
    }
    with atomic_dir(directory) as tmp:
        for name, split in splits.items():
            np.savez(
                tmp / SPLIT_FILE.format(split=name),
                images=split.images,
                labels=split.labels.astype(np.int64),
            )
        write_json(tmp / DATA_META_FILE, meta)
        for name, payload in (extra_files or {}).items():
            write_json(tmp / name, payload)


def _class_count(splits: dict[str, Split], meta: dict[str, Any]) -> int:
    """The number of classes: the length of the source's ``classes`` list when it names them
    (a class no image shows is still a class a conditional model is built for), checked
    against every label (each in 0..C-1: a labelled dataset has no unlabelled image); else
    one more than the largest label (0 when unlabelled). The names themselves are checked
    where they are used (conditioning, per-class evaluation), so an unusual folder name never
    stops an unconditional model's fetch."""
    listed = meta.get("classes")
    if not isinstance(listed, list) or not listed:
        return int(max(int(s.labels.max(initial=-1)) for s in splits.values()) + 1)
    name = printable(str(meta.get("name", "the dataset")))
    for split_name, split in splits.items():
        check_labels(split.labels, len(listed), f"dataset {name!r}: the {split_name} split")
    return len(listed)


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """A labelled split's labels all lie in 0..num_classes-1 (the classes its meta.json
    lists; no -1): at fetch, and again when training reads a dataset someone else wrote (a
    pulled ``data/``), so a bad label is a clear error before any step, not a crash in one."""
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DatasetError(
            f"{where} has label {int(bad[0])}, but the dataset names {num_classes} classes "
            f"(labels 0..{num_classes - 1}); fix the source's labels or its class list and "
            f"re-run the fetch stage"
        )


def read_split(directory: str | os.PathLike, split: str) -> Split:
    path = Path(directory) / SPLIT_FILE.format(split=split)
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist. Run the fetch stage first: `dvc repro fetch` "
            f"or `python pipelines/fetch.py data=<name>`."
        )
    try:
        with np.load(path) as archive:
            return Split(images=archive["images"], labels=archive["labels"])
    except DatasetError:
        raise
    except Exception as error:  # zipfile.BadZipFile, KeyError, ValueError, EOFError...
        raise DatasetError(
            f"{path} is corrupt or not a genlab dataset file ({type(error).__name__}: {error}). "
            f"Delete it and re-run the fetch stage."
        ) from error


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    import json

    path = Path(directory) / DATA_META_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist. Run the fetch stage first.")
    return json.loads(path.read_text())


def dataset_digest(directory: str | os.PathLike) -> str:
    """A sha256 that names the dataset as training reads it: over each file's name and sha256
    (``train.npz``, ``test.npz``, ``meta.json``), so anyone holding the folder can check that
    it is the data a model was trained on. (numpy writes .npz entries with a fixed timestamp,
    so the same arrays give the same bytes.)"""
    folder = Path(directory)
    digest = hashlib.sha256()
    for name in (*(SPLIT_FILE.format(split=split) for split in SPLITS), DATA_META_FILE):
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path} does not exist. Run the fetch stage first.")
        digest.update(f"{name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()
