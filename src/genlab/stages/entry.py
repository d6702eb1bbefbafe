"""Shared entry for stage scripts: validate first, turn known failures into clear exits."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.config import ConfigError, validate_config

log = logging.getLogger("genlab")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config without Hydra's own node: what a run records about itself."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}


def known_errors() -> tuple[type[BaseException], ...]:
    """Failures whose message already says what is wrong and how to fix it: no traceback."""
    from genlab.data.store import DatasetError
    from genlab.evaluation.classifier_training import ClassifierError
    from genlab.export.errors import ExportError
    from genlab.models.base import NonFiniteLossError
    from genlab.stages.errors import StageInputError
    from genlab.training.interruption import CheckpointWriteError

    return (
        DatasetError,
        ClassifierError,
        ExportError,
        NonFiniteLossError,
        StageInputError,
        CheckpointWriteError,
    )


class StageFailure(RuntimeError):
    """A known failure, already phrased for the user, with the exit code it stands for."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def run_checked(run: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Validate, run, and turn every known failure into one StageFailure."""
    try:
        validate_config(cfg)
    except ConfigError as error:
        raise StageFailure(str(error), EXIT_BAD_INPUT) from None
    from hydra.errors import InstantiationException

    from genlab.training.interruption import TrainingInterrupted

    try:
        return run(cfg)
    except TrainingInterrupted as error:
        raise StageFailure(str(error), error.exit_code) from None
    except InstantiationException as error:  # a constructor refused a config value
        raise StageFailure(f"invalid config: {error}", EXIT_BAD_INPUT) from None
    except known_errors() as error:
        raise StageFailure(f"{type(error).__name__}: {error}", EXIT_FAILED) from None


def stage_main(run: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """A single run exits non-zero with one message; a sweep job records its failure instead,
    so that the other jobs still run (the sweep summary reports it and sets the exit code)."""
    from genlab.tracking.sweep import in_sweep, record_job

    if in_sweep():
        return record_job(lambda: run_checked(run, cfg))
    try:
        return run_checked(run, cfg)
    except StageFailure as failure:
        print(f"genlab: {failure}", file=sys.stderr)
        sys.exit(failure.exit_code)
