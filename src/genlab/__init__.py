"""genlab: experiment orchestration for image generative models."""

from genlab._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

from genlab.config.hydra_runtime import register_resolvers  # noqa: E402  (after the shim)

register_resolvers()

__version__ = "0.1.0"
