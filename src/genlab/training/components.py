"""Callbacks and loggers from config: ``callbacks`` and ``logger.lightning`` in conf/ are named
``_target_`` nodes (as in lightning-hydra-template), so adding one is a config file, not code.

A node with ``_partial_: true`` is called with ``context=`` the run's :class:`RunContext` (its
id, folders, provenance) once that is known; a node set to null is left out (``callbacks.health=
null`` turns the health monitor off); a factory that returns None adds nothing (W&B disabled).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate

from genlab.tracking.identity import RunContext


def build_components(nodes: Mapping[str, Any] | None, context: RunContext) -> list[Any]:
    built = []
    for node in (nodes or {}).values():
        if node is None:
            continue
        component = instantiate(node)
        if isinstance(component, functools.partial):
            component = component(context=context)
        if component is not None:
            built.append(component)
    return built


def run_summaries(components: list[Any]) -> dict[str, Any]:
    """What the components report about the run (``summary()``), merged: the loop timer's
    seconds, the replica check, a search's objective."""
    merged: dict[str, Any] = {}
    for component in components:
        if callable(getattr(component, "summary", None)):
            merged.update(component.summary())
    return merged
