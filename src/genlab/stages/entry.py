"""Shared entry for stage scripts: validate first, turn genlab's failures into clear exits."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from genlab.config.hydra_runtime import in_sweep
from genlab.config.validate import validate_config
from genlab.errors import ConfigError, GenlabError
from genlab.tracking.sweep import record_job


def run_checked(
    run: Callable[[DictConfig], Any], cfg: DictConfig, instantiates: Sequence[str] | None
) -> Any:
    """Validate, then run; a constructor that refuses a config value is a config error."""
    if instantiates is None:
        validate_config(cfg)
    else:
        validate_config(cfg, target_sections=instantiates)
    try:
        return run(cfg)
    except InstantiationException as error:
        raise ConfigError(f"invalid config: {error}") from None


def stage_main(
    run: Callable[[DictConfig], Any],
    cfg: DictConfig,
    instantiates: Sequence[str] | None = None,
) -> Any:
    """A single run exits non-zero with one message; a sweep job records its failure instead,
    so that the other jobs still run (the sweep summary reports it and sets the exit code).

    ``instantiates``: the config sections whose ``_target_`` nodes the stage builds (its
    ``INSTANTIATES``), the only ones checked against their signatures; None checks them all.
    """
    if in_sweep():
        return record_job(lambda: run_checked(run, cfg, instantiates))
    try:
        return run_checked(run, cfg, instantiates)
    except GenlabError as failure:
        print(f"genlab: {failure.user_message()}", file=sys.stderr)
        sys.exit(failure.exit_code)
