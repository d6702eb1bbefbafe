"""A feature extractor for unlabelled data: the domain CNN trained to predict rotations.

Predicting whether an image was rotated by 0, 90, 180 or 270 degrees needs no labels and forces
the network to learn the shapes in the data (Gidaris et al., 2018). Its penultimate features
serve FID and KID like the supervised classifier's; its logits are rotation classes, so an
Inception-style score over them says nothing about samples and is not reported.
"""

from __future__ import annotations

import numpy as np

from genlab.data.store import Split

OBJECTIVE = "self-supervised: predict the rotation (0/90/180/270 degrees) of unlabelled images"
ROTATIONS = 4


def rotation_task(split: Split) -> Split:
    """Every image four times, rotated by k * 90 degrees and labelled k."""
    images = np.concatenate([np.rot90(split.images, k, axes=(2, 3)) for k in range(ROTATIONS)])
    labels = np.repeat(np.arange(ROTATIONS, dtype=np.int64), len(split.images))
    return Split(np.ascontiguousarray(images), labels)
