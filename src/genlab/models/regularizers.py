"""Discriminator regularizers, added to the D loss so a model can swap them by config.

Each is called once per discriminator step as ``reg(discriminator, real, fake, step)`` and returns
a scalar penalty to add to the loss, or ``None`` on steps it skips (lazy regularization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from genlab.checks import require_positive


class DiscriminatorRegularizer(Protocol):
    """What a model needs from a regularizer; lets it hold R1, GP or a custom one alike."""

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, step: int
    ) -> Tensor | None: ...


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"regularizer {name} must be >= 0, got {value!r}")


def _input_gradients(discriminator: nn.Module, x: Tensor) -> Tensor:
    """d(sum of logits)/dx with a graph kept, so the penalty can be backpropagated into D."""
    x = x.detach().requires_grad_(True)
    logits = discriminator(x)
    (grad,) = torch.autograd.grad(
        logits.sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return grad


@dataclass(frozen=True)
class R1Penalty:
    """Lazy R1 (Mescheder et al., 2018; StyleGAN2): penalise D's gradient on reals only.

    Computed every ``every_n_steps`` steps and scaled by ``every_n_steps`` so its average strength
    matches plain R1 (``every_n_steps=1``) at a fraction of the double-backward cost.
    """

    gamma: float = 10.0
    every_n_steps: int = 16

    def __post_init__(self) -> None:
        _check_non_negative("gamma", self.gamma)
        require_positive(every_n_steps=self.every_n_steps)

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, step: int
    ) -> Tensor | None:
        if step % self.every_n_steps != 0:
            return None
        grad = _input_gradients(discriminator, real).float()  # fp32 sums under autocast too
        squared_norm = grad.square().flatten(1).sum(dim=1).mean()
        return squared_norm * (0.5 * self.gamma * self.every_n_steps)


@dataclass(frozen=True)
class GradientPenalty:
    """WGAN-GP (Gulrajani et al., 2017): push ||grad D|| towards ``target_norm`` between data
    and samples, a soft Lipschitz constraint for the Wasserstein critic.

    Interpolation weights are drawn per sample from the torch global RNG on ``real.device``.
    """

    weight: float = 10.0
    target_norm: float = 1.0
    every_n_steps: int = 1

    def __post_init__(self) -> None:
        _check_non_negative("weight", self.weight)
        _check_non_negative("target_norm", self.target_norm)
        require_positive(every_n_steps=self.every_n_steps)

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, step: int
    ) -> Tensor | None:
        if step % self.every_n_steps != 0:
            return None
        if real.shape != fake.shape:
            raise ValueError(
                f"GradientPenalty needs real and fake of the same shape, got "
                f"{tuple(real.shape)} and {tuple(fake.shape)}"
            )
        alpha_shape = (real.size(0),) + (1,) * (real.dim() - 1)
        alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype)
        # Under bf16 autocast a generator can return bf16 fakes next to fp32 reals.
        interpolates = torch.lerp(real.detach(), fake.detach().to(real.dtype), alpha)
        grad = _input_gradients(discriminator, interpolates).float()
        norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
        penalty = (norms - self.target_norm).square().mean()
        return penalty * (self.weight * self.every_n_steps)
