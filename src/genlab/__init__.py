"""genlab: experiment orchestration for image generative models."""

from genlab._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

__version__ = "0.1.0"
