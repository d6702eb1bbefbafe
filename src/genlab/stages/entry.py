"""Shared entry for stage scripts: validate first, turn genlab's failures into clear exits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from genlab.config.hydra_runtime import in_sweep
from genlab.config.validate import validate_config
from genlab.errors import ConfigError, GenlabError
from genlab.tracking.sweep import record_job


def run_checked(run: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Validate, then run; a constructor that refuses a config value is a config error."""
    validate_config(cfg)
    try:
        return run(cfg)
    except InstantiationException as error:
        raise ConfigError(f"invalid config: {error}") from None


def stage_main(run: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """A single run exits non-zero with one message; a sweep job records its failure instead,
    so that the other jobs still run (the sweep summary reports it and sets the exit code)."""
    if in_sweep():
        return record_job(lambda: run_checked(run, cfg))
    try:
        return run_checked(run, cfg)
    except GenlabError as failure:
        print(f"genlab: {failure.user_message()}", file=sys.stderr)
        sys.exit(failure.exit_code)
