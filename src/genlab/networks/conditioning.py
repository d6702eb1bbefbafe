"""Class labels as network inputs: one rule for every family.

A conditional network (``num_classes > 0``) takes ``labels`` beside its usual input, either as
class indices (int64, shape (B,)) or as rows of class weights (float, shape (B, num_classes):
one-hot, or a blend of classes when interpolating between them). Both become weight rows here,
so an embedding is a linear map of them (``ClassEmbedding``) and the one-hot path (the VAE)
concatenates them as they are. An unconditional network (``num_classes == 0``) takes no labels.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.checks import MAX_CLASSES


def check_num_classes(num_classes: int) -> int:
    """0 (unconditional) or a class count in [2, MAX_CLASSES]."""
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or not (num_classes == 0 or 2 <= num_classes <= MAX_CLASSES)
    ):
        raise ValueError(
            f"num_classes must be 0 (unconditional) or an integer in [2, {MAX_CLASSES}], "
            f"got {num_classes!r}"
        )
    return num_classes


def check_labels(num_classes: int, labels: torch.Tensor | None) -> None:
    """Refuse labels given to an unconditional network and a conditional network called without
    them: either would otherwise silently sample something other than what was asked for."""
    if num_classes == 0 and labels is not None:
        raise ValueError("this network is unconditional (num_classes=0): it takes no labels")
    if num_classes and labels is None:
        raise ValueError(f"this network is class-conditional: pass labels (0..{num_classes - 1})")


def class_weights(
    labels: torch.Tensor | None, num_classes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor | None:
    """``labels`` as (B, num_classes) float rows, or None for an unconditional network."""
    check_labels(num_classes, labels)
    if labels is None:
        return None
    if labels.dtype.is_floating_point:
        if labels.dim() != 2 or labels.shape[1] != num_classes:
            raise ValueError(
                f"class-weight labels must be (batch, {num_classes}), got {tuple(labels.shape)}"
            )
        return labels.to(dtype)
    if labels.dim() != 1:
        raise ValueError(f"class-index labels must be (batch,), got {tuple(labels.shape)}")
    return one_hot_or_nan(labels, num_classes, dtype)


def one_hot_or_nan(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Class indices as one-hot rows; a label outside 0..num_classes-1 is a ValueError when
    called eagerly, and a row of NaN in a traced graph (ONNX, TorchScript).

    Not ``F.one_hot``: in ONNX it becomes OneHot, which wraps -1 to the last class and gives an
    all-zero row ("no class") for a label >= num_classes, so a caller of the exported file would
    get a plausible image of the wrong class. Here nothing wraps, and dividing each row by its
    sum (1 for a valid label, 0 for an invalid one) turns an invalid row into NaN, which poisons
    that sample's image instead."""
    labels = labels.long()
    if not torch.jit.is_tracing() and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"class label {bad} is out of range: labels must be class indices in "
                f"0..{num_classes - 1}"
            )
    rows = (labels[:, None] == torch.arange(num_classes, device=labels.device)).to(dtype)
    return rows / rows.sum(dim=1, keepdim=True)


class ClassEmbedding(nn.Module):
    """labels -> (B, dim): a learned vector per class (a bias-free linear map of the class
    weights, so a one-hot row picks one class's vector and a blend mixes them)."""

    def __init__(self, num_classes: int, dim: int, init: float = 0.0, std: float = 1.0):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * std + init)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        weights = class_weights(labels, self.num_classes, self.weight.dtype)
        return weights @ self.weight


class ConditionalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose scale and shift are chosen by the class (de Vries et al., 2017; Miyato &
    Koyama's cBN generator): the normalisation statistics are shared, the affine is per class.

    A ``_BatchNorm`` subclass, so standing statistics and EMA buffers treat it like any other.
    """

    def __init__(self, num_features: int, num_classes: int):
        super().__init__(num_features, affine=False)
        self.scale = ClassEmbedding(num_classes, num_features, init=1.0, std=0.02)
        self.shift = ClassEmbedding(num_classes, num_features, init=0.0, std=0.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = super().forward(x)
        return x * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]
