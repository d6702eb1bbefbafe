"""Config checks that run before any work: types, unknown keys, ranges, constructor arguments."""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.config.validate import validate_config
from genlab.errors import ConfigError

__all__ = ["ConfigError", "resolved_config", "validate_config"]


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config without Hydra's own node: what a run records about itself."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
