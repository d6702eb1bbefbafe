"""DiffAugment: differentiable augmentation of everything D sees, so small datasets don't overfit D.

Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training". Every op is
differentiable w.r.t. the images, so the generator is trained through it.
"""

# Adapted from the reference DiffAugment_pytorch.py (mit-han-lab/data-efficient-gans, BSD-2-Clause).

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POLICIES = ("color", "translation", "cutout")


def _per_sample(x: Tensor) -> Tensor:
    """One U[0, 1) draw per sample, broadcastable over (C, H, W)."""
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def rand_brightness(x: Tensor) -> Tensor:
    return x + (_per_sample(x) - 0.5)


def rand_saturation(x: Tensor) -> Tensor:
    # A no-op on 1-channel images: the channel mean is the image itself.
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_sample(x) * 2.0) + mean


def rand_contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean


def _grids(x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Batch, row and column index grids of shape (B, height, width)."""
    return torch.meshgrid(
        torch.arange(x.size(0), device=x.device),
        torch.arange(height, device=x.device),
        torch.arange(width, device=x.device),
        indexing="ij",
    )


def rand_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by a random integer offset up to ``ratio`` of its size; zeros fill in."""
    batch, _, height, width = x.shape
    shift_h, shift_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, size=(batch, 1, 1), device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, size=(batch, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = _grids(x, height, width)
    # Index into a 1-pixel zero-padded copy; clamping out-of-range sources onto the pad gives zeros.
    grid_y = torch.clamp(grid_y + dy + 1, 0, height + 1)
    grid_x = torch.clamp(grid_x + dx + 1, 0, width + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    return padded[grid_b, grid_y, grid_x].permute(0, 3, 1, 2)


def rand_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a random square of side ``ratio`` of the image size (clipped at the borders)."""
    batch, _, height, width = x.shape
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    if size_h == 0 or size_w == 0:
        return x
    cy = torch.randint(0, height + (1 - size_h % 2), size=(batch, 1, 1), device=x.device)
    cx = torch.randint(0, width + (1 - size_w % 2), size=(batch, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = _grids(x, size_h, size_w)
    grid_y = torch.clamp(grid_y + cy - size_h // 2, 0, height - 1)
    grid_x = torch.clamp(grid_x + cx - size_w // 2, 0, width - 1)
    mask = torch.ones(batch, height, width, dtype=x.dtype, device=x.device)
    mask[grid_b, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)


class DiffAugment(nn.Module):
    """Applies the policies in order, with independent random parameters per sample.

    Draws from the torch global RNG on the input's device, so ``torch.manual_seed`` reproduces it.
    Always augments (also in eval mode): the training code decides when to call it.
    """

    def __init__(
        self,
        policy: str | Sequence[str] = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        names = policy.split(",") if isinstance(policy, str) else list(policy)
        self.policy = tuple(name.strip() for name in names if name.strip())
        unknown = [name for name in self.policy if name not in POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {unknown}; valid policies are {POLICIES}")
        for name, ratio in (
            ("translation_ratio", translation_ratio),
            ("cutout_ratio", cutout_ratio),
        ):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {ratio!r}")
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def _ops(self, name: str) -> list[Callable[[Tensor], Tensor]]:
        if name == "color":
            return [rand_brightness, rand_saturation, rand_contrast]
        if name == "translation":
            return [lambda x: rand_translation(x, self.translation_ratio)]
        return [lambda x: rand_cutout(x, self.cutout_ratio)]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"DiffAugment expects images of shape (B, C, H, W), got {tuple(x.shape)}"
            )
        for name in self.policy:
            for op in self._ops(name):
                x = op(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"policy={','.join(self.policy)!r}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio}"
        )
