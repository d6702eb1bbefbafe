"""Config checks that run before any work: types, unknown keys, ranges, constructor arguments."""

from genlab.config.validate import ConfigError, validate_config

__all__ = ["ConfigError", "validate_config"]
