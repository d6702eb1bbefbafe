"""Argument checks shared across the package.

This is the lowest layer: it imports nothing from genlab.
"""

from __future__ import annotations

from typing import Any


def require_positive(**values: Any) -> None:
    """Raise ``ValueError`` unless every keyword value is a positive ``int``.

    ``bool`` is rejected even though it subclasses ``int``: ``True`` is not a size.
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
