"""Per-step diagnostics a model logs about its own samples (read by the training health
monitor); here, below training, because the model computes them inside its training step."""

from __future__ import annotations

import torch

MAX_IMAGES = 32  # enough for a stable mean; keeps the per-step cost well under a millisecond


def mean_pairwise_distance(images: torch.Tensor) -> torch.Tensor:
    flat = images.detach()[:MAX_IMAGES].flatten(1).float()
    count = flat.shape[0]
    if count < 2:
        return flat.new_zeros(())
    distances = torch.cdist(flat, flat)  # matmul form: fast, ~1e-4 off zero for twins
    return distances.sum() / (count * (count - 1))


def sample_diversity(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """~1 when fakes vary as much as reals do; ~0 for a generator that outputs one image."""
    return mean_pairwise_distance(fake) / mean_pairwise_distance(real).clamp_min(1e-8)
