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


def stage_main(run: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    try:
        validate_config(cfg)
    except ConfigError as error:
        print(f"genlab: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    from hydra.errors import InstantiationException

    from genlab.training.interruption import TrainingInterrupted

    try:
        return run(cfg)
    except TrainingInterrupted as error:
        print(f"genlab: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except InstantiationException as error:  # a constructor refused a config value
        print(f"genlab: invalid config: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except known_errors() as error:
        print(f"genlab: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
