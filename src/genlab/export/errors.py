"""Errors raised by the export package."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export could not be produced or does not reproduce the eager generator.

    Raised before the file is published, so the target path is never left holding a bad export.
    """
