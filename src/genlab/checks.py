"""Argument checks shared across the package.

This is the lowest layer: it imports nothing from genlab.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any


def require_positive(**values: Any) -> None:
    """Raise ``ValueError`` unless every keyword value is a positive ``int``.

    ``bool`` is rejected even though it subclasses ``int``: ``True`` is not a size.
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a JSON object), else an empty one: in a file someone
    else made (a metrics record, a dataset's meta.json) a field of the wrong type reads as not
    recorded, never as a traceback."""
    return value if isinstance(value, Mapping) else {}


def is_number(value: Any) -> bool:
    """A real number: ``true`` / ``false`` are not, though Python's bool is an int."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a usable number, else None: NaN, an infinity, a bool, a
    string and an integer too large for a float (a JSON file may hold ``1`` and 400 zeros, on
    which ``math.isfinite`` and ``float`` raise OverflowError) are not. The one check for a
    number read from someone else's file, so that no reader has to remember the overflow."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def printable(text: str, limit: int = 200) -> str:
    """Text from someone else's file (a name, a metadata value) made safe for a terminal or a
    one-line message: control characters (escape sequences that could rewrite what the user
    sees, line breaks that could fake another message) are shown escaped, and a long value is
    cut short so a hostile file cannot flood the screen."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


#: The largest latent_dim / w_dim genlab accepts, from a generator file at train time and from an
#: export's metadata at generate time: far above any genlab model, small enough that a value
#: taken from someone else's file cannot size a tensor that exhausts memory. One constant, so
#: what training may write and what `genlab generate` will read can never disagree.
MAX_LATENT_DIM = 4096


#: model.conditioning: "class" trains on the dataset's labels (conf/model/shape/ wires the
#: class count into the networks through the ``genlab_num_classes`` resolver), "none" ignores
#: them.
UNCONDITIONAL, CLASS_CONDITIONAL = "none", "class"
CONDITIONING = (UNCONDITIONAL, CLASS_CONDITIONAL)

#: The most classes a dataset, a generator file or an export may name: far above any dataset
#: genlab reads (CIFAR-100, ImageNet's 1,000), small enough that a class count taken from
#: someone else's file cannot size a huge embedding.
MAX_CLASSES = 1000
MAX_CLASS_NAME = 64


def class_names(value: Any) -> list[str] | None:
    """``value`` as a list of class names when it is one: 1..``MAX_CLASSES`` distinct,
    non-empty, printable strings of at most ``MAX_CLASS_NAME`` characters (a dataset's
    meta.json, a generator file's record, an export's metadata); else None, and the caller
    names its file. An unlabelled dataset records no classes (``[]`` or null): also None."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CLASSES:
        return None
    if not all(
        isinstance(name, str) and 0 < len(name) <= MAX_CLASS_NAME and name.isprintable()
        for name in value
    ):
        return None
    return list(value) if len(set(value)) == len(value) else None
