"""Exponential moving average of generator weights, via torch's own AveragedModel."""

from __future__ import annotations

import copy

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    ema = AveragedModel(
        copy.deepcopy(model), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
    )
    ema.requires_grad_(False)
    return ema
