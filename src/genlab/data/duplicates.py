"""Exact and near duplicates in a dataset: they inflate memorization figures and bias FID.

Exact: identical decoded pixels, reported as groups (never as pairs: a group of n identical
images has n(n-1)/2 pairs, ~450 million for 30,000). Near: perceptual hashes
(``imagehash.phash``, 64 bits) within a Hamming distance, compared pairwise in NumPy between
distinct images only (one per exact group, which stands for the group): fine for tens of
thousands of distinct images.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import track


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """uint8 N x C x H x W -> N uint64 perceptual hashes."""
    import imagehash

    hashes = []
    for image in track(images, description=f"fetch: hashing {len(images)} images for duplicates"):
        pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
        bits = imagehash.phash(pil).hash.flatten()
        hashes.append(int("".join("1" if b else "0" for b in bits), 2))
    return np.asarray(hashes, dtype=np.uint64)


def _hamming(one: np.uint64, many: np.ndarray) -> np.ndarray:
    return np.unpackbits((many ^ one).view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def find_duplicates(
    images: np.ndarray, names: Sequence[str], max_distance: int = 4
) -> dict[str, Any]:
    """Exact groups and near pairs; memory grows with the number of images, not pairs."""
    if len(names) != len(images):
        raise ValueError(f"{len(names)} names for {len(images)} images")
    by_pixels: dict[str, list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        by_pixels[hashlib.sha256(image.tobytes()).hexdigest()].append(index)
    exact_groups = [group for group in by_pixels.values() if len(group) > 1]
    # One image per group of identical pixels: identical images have identical hashes, and a
    # pair inside a group is already an exact duplicate.
    distinct = [group[0] for group in by_pixels.values()]
    hashes = perceptual_hashes(images[distinct])
    near = []
    for position in range(len(hashes) - 1):
        distances = _hamming(hashes[position], hashes[position + 1 :])
        for offset in np.flatnonzero(distances <= max_distance):
            one, other = distinct[position], distinct[position + 1 + int(offset)]
            near.append([names[one], names[other], int(distances[offset])])
    return {
        "method": (
            "exact: identical decoded pixels (groups); near: imagehash.phash (64 bits) within "
            f"Hamming distance {max_distance}, between distinct images (the first file of an "
            "exact group stands for the group)"
        ),
        "images": len(images),
        "exact_groups": [[names[i] for i in group] for group in exact_groups],
        "exact_duplicates": sum(len(group) - 1 for group in exact_groups),
        "near_pairs": near,
        "near_duplicate_pairs": len(near),
    }
