"""Fail before any work starts, with a message that names the key and the fix."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genlab.config.schema import RootConfig
from genlab.errors import ConfigError, RangeError

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


# The sections whose _target_ nodes a stage may build objects from.
TARGET_SECTIONS = ("model", "trainer", "data", "callbacks", "logger")


def validate_config(cfg: DictConfig, target_sections: Sequence[str] = TARGET_SECTIONS) -> None:
    """Check every section's types, keys and ranges (the schema), then the arguments of each
    ``_target_`` node in ``target_sections``: a stage checks (and so imports) only the targets
    it builds, its ``INSTANTIATES``."""
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RootConfig), cfg)
        OmegaConf.to_object(merged)
    except RangeError as error:
        raise ConfigError(f"Invalid config: {error}") from None
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(error).split("\n")[0]
        raise ConfigError(f"Invalid config at `{key}`: {reason}") from None
    try:
        for key in cfg:
            _check_numbers(cfg._get_node(key), str(key))
    except RangeError as error:
        raise ConfigError(f"Invalid config: {error}") from None
    _check_precision(cfg)
    for section in target_sections:
        _check_targets(cfg[section], section)


def _check_precision(cfg: DictConfig) -> None:
    """fp16 autocast is CUDA-only; Lightning would silently run a CPU job in bf16 instead."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    precision = str(trainer.get("precision", ""))
    if precision in ("16-mixed", "16") and trainer.get("accelerator") == "cpu":
        raise ConfigError(
            f"Invalid config: trainer.precision={precision} is GPU-only (fp16 autocast needs "
            "CUDA); on CPU use trainer.precision=bf16-mixed, or trainer=gpu on a GPU machine"
        )


def _is_learning_rate(key: str) -> bool:
    return key == "lr" or key.endswith("_lr")


def _check_numbers(node: Any, path: str) -> None:
    """Every number in the whole tree must be finite, and every learning rate (``lr``,
    ``*_lr``) > 0. NaN compares false with everything, so range checks written as
    ``value > 0`` and signature checks of ``_target_`` nodes would let ``lr=nan`` through to
    a run that trains NaN weights. Interpolations are checked where their value is written."""
    if isinstance(node, DictConfig):
        for key in node:
            _check_numbers(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            _check_numbers(node._get_node(index), f"{path}[{index}]")
    elif node is not None and not node._is_interpolation() and not node._is_missing():
        value = node._value()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            raise RangeError(f"`{path}` must be a finite number, got {value!r}")
        if _is_learning_rate(path.rsplit(".", 1)[-1]) and value <= 0:
            raise RangeError(f"`{path}` (a learning rate) must be > 0, got {value!r}")


def _check_targets(node: Any, path: str) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            _check_call(node, path)
        for key in node:
            if key not in _HYDRA_KEYS:
                _check_targets(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for index, item in enumerate(node):
            _check_targets(item, f"{path}[{index}]")


def _check_call(node: DictConfig, path: str) -> None:
    target_name = node["_target_"]
    try:
        target = get_object(target_name)
    except Exception as error:
        raise ConfigError(f"`{path}._target_`: cannot import {target_name!r} ({error})") from None
    signature = inspect.signature(target)
    parameters = signature.parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    hints = _type_hints(target)
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        if key not in parameters and not accepts_any:
            valid = sorted(k for k, p in parameters.items() if p.kind.name != "VAR_POSITIONAL")
            raise ConfigError(f"Unknown key `{path}.{key}`: {target_name} takes {', '.join(valid)}")
        if key in hints and not OmegaConf.is_missing(node, key):
            value = node._get_node(key)
            if not OmegaConf.is_interpolation(node, key) and not isinstance(
                value, (DictConfig, ListConfig)
            ):
                _check_type(value._value(), hints[key], f"{path}.{key}")


def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:
        return {}


_SIMPLE = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def _check_type(value: Any, annotation: Any, key: str) -> None:
    """Check only simple scalar annotations; anything richer is left to the constructor."""
    options = _simple_options(annotation)
    if options is None:
        return
    if value is None:
        if type(None) in options:
            return
        raise ConfigError(f"`{key}` may not be null; expected {_describe(options)}")
    for option in options:
        allowed = _SIMPLE.get(option, ())
        if isinstance(value, allowed) and not (option is not bool and isinstance(value, bool)):
            return
    raise ConfigError(
        f"`{key}` has the wrong type: expected {_describe(options)}, "
        f"got {type(value).__name__} {value!r}"
    )


def _simple_options(annotation: Any) -> tuple[type, ...] | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
    else:
        options = (annotation,)
    if all(o in _SIMPLE or o is type(None) for o in options):
        return options
    return None


def _describe(options: tuple[type, ...]) -> str:
    return " or ".join("null" if o is type(None) else o.__name__ for o in options)
