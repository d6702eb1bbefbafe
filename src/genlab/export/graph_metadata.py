"""What an exported graph says about itself beside the graph: the metadata `genlab generate`
reads back (the one home of its key names) and the class facts export.json records.

Every value is a string (ONNX metadata_props and TorchScript's extra file hold text); a
conditional generator's class names travel as a JSON list. An unconditional export declares
no class keys at all, so its files stay as they were before conditioning existed.
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn

from genlab.checks import CLASS_CONDITIONAL, UNCONDITIONAL

LATENT_DIM = "latent_dim"
CONDITIONING = "conditioning"  # checks.CONDITIONING: "class" or "none"
NUM_CLASSES = "num_classes"  # 0 for an unconditional generator
CLASS_NAMES = "class_names"


def class_facts(generator: nn.Module, record: dict[str, Any]) -> dict[str, Any]:
    """What export.json says of the classes: conditioning, class count and the names from the
    generator file's record (as load_generator validated them; [] when unconditional)."""
    num_classes = int(getattr(generator, "num_classes", 0))
    return {
        CONDITIONING: CLASS_CONDITIONAL if num_classes else UNCONDITIONAL,
        NUM_CLASSES: num_classes,
        CLASS_NAMES: list(record.get(CLASS_NAMES) or []),
    }


def graph_metadata(
    provenance: dict[str, str], latent_dim: int, classes: dict[str, Any] | None = None
) -> dict[str, str]:
    """The metadata every graph file of an export carries: where it came from, its input size
    and, for a conditional generator only, its classes (``classes``: :func:`class_facts`)."""
    metadata = {**provenance, LATENT_DIM: str(latent_dim)}
    if classes and classes[NUM_CLASSES]:
        metadata[CONDITIONING] = str(classes[CONDITIONING])
        metadata[NUM_CLASSES] = str(classes[NUM_CLASSES])
        metadata[CLASS_NAMES] = json.dumps(classes[CLASS_NAMES], ensure_ascii=True)
    return metadata


def balanced_grid_size(count: int, num_classes: int) -> int:
    """A sample grid of about ``count`` images: for a conditional generator rounded up to whole
    rows of every class (one class per column), so each class shows equally often."""
    if not num_classes:
        return count
    return num_classes * max(1, -(-count // num_classes))
