"""scikit-learn's handwritten digits: the dataset that ships inside a package, so the default
pipeline runs offline."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data.store import Split

LICENCE = (
    "UCI ML hand-written digits (Alpaydin & Kaynak, 1998), distributed with scikit-learn "
    "(BSD-3-Clause); CC BY 4.0 on the UCI repository"
)


class DigitsSource:
    """1,797 8x8 gray digits scaled to uint8, resized to ``image_size``, split with a fixed seed."""

    def __init__(self, image_size: int = 32, test_fraction: float = 0.2, seed: int = 0):
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.image_size = image_size
        self.test_fraction = test_fraction
        self.seed = seed

    def load(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
        images = F.interpolate(
            images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        labels = digits.target.astype(np.int64)
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)),
            test_size=self.test_fraction,
            random_state=self.seed,
            stratify=labels,
        )
        return {
            "train": Split(images[train_idx], labels[train_idx]),
            "test": Split(images[test_idx], labels[test_idx]),
        }

    def meta(self) -> dict[str, Any]:
        from sklearn.datasets import load_digits

        raw = load_digits().images.astype(np.uint8).tobytes()
        return {
            "name": "digits",
            "source": "sklearn.datasets.load_digits",
            "licence": LICENCE,
            "classes": [str(d) for d in range(10)],
            "resize_filter": "bilinear (torch.nn.functional.interpolate, align_corners=False)",
            "split": {"test_fraction": self.test_fraction, "seed": self.seed, "stratified": True},
            "source_sha256": hashlib.sha256(raw).hexdigest(),
        }
