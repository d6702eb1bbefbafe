"""Adversarial losses, D regularizers and DiffAugment against known values and invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.models.augment import DiffAugment
from genlab.models.losses import HingeLoss, NonSaturatingLoss, WassersteinLoss
from genlab.models.regularizers import GradientPenalty, R1Penalty


class LinearD(nn.Module):
    """D(x) = <a, x>: its input gradient is ``a`` for every sample, so penalties are analytic."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.a).flatten(1).sum(dim=1)


class ConstantD(nn.Module):
    """Ignores its input: zero input gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: Tensor) -> Tensor:
        return self.c.expand(x.size(0))


def conv_d(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 1, 4),
        nn.Flatten(0),
    )


# --- losses -------------------------------------------------------------------------------------


def test_hinge_loss_is_zero_past_the_margin() -> None:
    loss = HingeLoss()
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert loss.discriminator(real, fake).item() == 0.0
    assert loss.discriminator(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2.0)
    assert loss.generator(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_wasserstein_loss_sign_conventions() -> None:
    loss = WassersteinLoss()
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    # The critic lowers its loss by scoring reals above fakes; G by raising fake scores.
    assert loss.discriminator(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert loss.generator(fake).item() == pytest.approx(0.5)


def test_non_saturating_loss_matches_softplus_formula() -> None:
    loss = NonSaturatingLoss()
    real, fake = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.0, 1.5, -3.0])
    expected_d = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    expected_g = -torch.log(torch.sigmoid(fake)).mean()
    torch.testing.assert_close(loss.discriminator(real, fake), expected_d)
    torch.testing.assert_close(loss.generator(fake), expected_g)


# --- regularizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("every_n_steps", [1, 4])
def test_r1_analytic_value_on_linear_d(every_n_steps: int) -> None:
    torch.manual_seed(0)
    d = LinearD((3, 8, 8))
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    penalty = R1Penalty(gamma=2.5, every_n_steps=every_n_steps)(d, real, fake, step=0)
    assert penalty is not None and penalty.dim() == 0
    expected = 2.5 / 2 * d.a.detach().square().sum() * every_n_steps
    torch.testing.assert_close(penalty.detach(), expected)


def test_r1_is_zero_when_d_ignores_its_input() -> None:
    real = torch.randn(4, 1, 8, 8)
    penalty = R1Penalty(every_n_steps=1)(ConstantD(), real, real.clone(), step=0)
    assert penalty is not None and penalty.item() == 0.0


def test_lazy_regularizers_skip_off_steps() -> None:
    d, x = LinearD((1, 4, 4)), torch.randn(2, 1, 4, 4)
    r1, gp = R1Penalty(every_n_steps=4), GradientPenalty(every_n_steps=3)
    assert [r1(d, x, x, step) is None for step in range(6)] == [
        False,
        True,
        True,
        True,
        False,
        True,
    ]
    assert [gp(d, x, x, step) is None for step in range(4)] == [False, True, True, False]


@pytest.mark.parametrize("every_n_steps", [1, 2])
def test_gradient_penalty_analytic_value_on_linear_d(every_n_steps: int) -> None:
    torch.manual_seed(0)
    d = LinearD((3, 4, 4))
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    penalty = GradientPenalty(weight=3.0, every_n_steps=every_n_steps)(d, real, fake, step=0)
    assert penalty is not None
    expected = 3.0 * (d.a.detach().norm() - 1.0) ** 2 * every_n_steps
    torch.testing.assert_close(penalty.detach(), expected)


def test_gradient_penalty_rejects_mismatched_batches() -> None:
    d = LinearD((1, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        GradientPenalty()(d, torch.randn(2, 1, 4, 4), torch.randn(3, 1, 4, 4), step=0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("regularizer", [R1Penalty(every_n_steps=1), GradientPenalty()])
def test_penalty_backpropagates_into_conv_d_with_batchnorm(
    channels: int, regularizer: R1Penalty | GradientPenalty
) -> None:
    torch.manual_seed(0)
    d = conv_d(channels).train()
    real, fake = torch.randn(4, channels, 8, 8), torch.randn(4, channels, 8, 8)
    penalty = regularizer(d, real, fake, step=0)
    assert penalty is not None and penalty.item() > 0
    penalty.backward()
    conv_weight = d[0].weight.grad
    assert conv_weight is not None and torch.isfinite(conv_weight).all()
    assert conv_weight.abs().sum() > 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: R1Penalty(gamma=-1), "regularizer gamma must be >= 0, got -1"),
        (lambda: R1Penalty(every_n_steps=0), "every_n_steps must be a positive integer"),
        (lambda: R1Penalty(every_n_steps=2.0), "every_n_steps must be a positive integer"),
        (lambda: GradientPenalty(weight=-0.5), "regularizer weight must be >= 0"),
        (lambda: GradientPenalty(every_n_steps=-3), "every_n_steps must be a positive integer"),
    ],
)
def test_regularizer_argument_validation(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- DiffAugment --------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_diffaugment_preserves_shape_and_passes_gradients(channels: int) -> None:
    x = torch.randn(4, channels, 16, 12, requires_grad=True)
    out = DiffAugment()(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_diffaugment_identity_cases() -> None:
    x = torch.randn(3, 3, 8, 8)
    assert torch.equal(DiffAugment(policy="")(x), x)
    assert torch.equal(DiffAugment(policy=[])(x), x)
    assert torch.equal(DiffAugment(policy="translation", translation_ratio=0.0)(x), x)


def test_translation_is_an_integer_shift_with_zero_fill() -> None:
    torch.manual_seed(1)
    x = torch.rand(6, 2, 8, 8) + 1.0  # strictly positive, so zeros can only come from padding
    out = DiffAugment(policy="translation", translation_ratio=0.25)(x)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(x.size(0)):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(out[i], padded[i, :, 2 + dy : 10 + dy, 2 + dx : 10 + dx])
        ]
        assert matches, f"sample {i} is not a shift of its input"


def test_cutout_zeros_a_clipped_square() -> None:
    torch.manual_seed(0)
    x = torch.ones(64, 3, 32, 32)
    out = DiffAugment(policy="cutout", cutout_ratio=0.5)(x)
    zeros = out == 0
    assert torch.equal(zeros, zeros[:, :1].expand_as(zeros))  # same region in every channel
    counts = zeros[:, 0].flatten(1).sum(dim=1)
    rows, cols = zeros[:, 0].any(dim=2).sum(dim=1), zeros[:, 0].any(dim=1).sum(dim=1)
    assert torch.equal(counts, rows * cols)  # an axis-aligned rectangle
    # A 16x16 square, clipped to at least 8x8 when centred on the border.
    assert ((counts >= 8 * 8) & (counts <= 16 * 16)).all()
    assert (counts == 16 * 16).any()


def test_diffaugment_is_reproducible_with_manual_seed() -> None:
    x = torch.randn(4, 3, 16, 16)
    augment = DiffAugment()
    torch.manual_seed(123)
    first = augment(x)
    torch.manual_seed(123)
    second = augment(x)
    assert torch.equal(first, second)
    assert not torch.equal(first, augment(x))


def test_diffaugment_uses_independent_params_per_sample() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8).expand(8, -1, -1, -1)
    out = DiffAugment(policy="color")(x)
    assert not torch.allclose(out[0], out[1])


def test_diffaugment_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError, match="valid policies.*color.*translation.*cutout"):
        DiffAugment(policy="color,flip")
    with pytest.raises(ValueError, match="cutout_ratio"):
        DiffAugment(cutout_ratio=1.5)
