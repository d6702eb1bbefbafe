"""Speed options that change how the networks run, not what they compute.

channels_last helps convolutions on recent GPUs (tensor cores) and rarely on CPU; torch.compile
pays a compile cost up front that short CPU runs never earn back. Both are off by default and
switched on from config (``train.speed``); mixed precision is the Trainer's own ``precision``.
"""

from __future__ import annotations

import torch
from torch import nn

# The trained networks of each family; the EMA copy is left eager (it only runs for sampling).
TRAINED_NETWORKS = ("generator", "discriminator", "encoder", "decoder")


def apply_speed_options(module: nn.Module, channels_last: bool, compile: bool) -> list[str]:
    """Apply the options in place; returns the networks they were applied to (a regularized
    discriminator is not compiled: torch.compile cannot take the double backward of R1 / GP)."""
    networks = [n for n in TRAINED_NETWORKS if isinstance(getattr(module, n, None), nn.Module)]
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if compile:
        for name in networks:
            if name == "discriminator" and getattr(module, "regularizer", None) is not None:
                continue  # R1 / gradient penalty backpropagate twice through D: aot_autograd can't
            getattr(module, name).compile()  # in place: state_dict keys stay the same
    return networks


def set_cpu_threads(threads: int | None) -> int:
    """torch's intra-op CPU threads for this process; ``None`` keeps torch's choice.

    Parallel sweep jobs that each take every core oversubscribe the CPU and finish later than
    the same jobs run one after another (benchmarks/sweep_launchers.py).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
