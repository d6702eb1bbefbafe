"""A shuffling sampler whose position is a pure function of (seed, batch index).

PyTorch's shuffling draws each epoch's order from a generator that a checkpoint does not hold,
so a resumed run would see other batches than the uninterrupted run. Here epoch ``e``'s order
is ``permutation(seed, e)`` and ``start_at(i)`` makes the first iteration begin at global batch
``i``, which is all a resume needs to see the very batches the uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableShuffleSampler(Sampler[int]):
    def __init__(self, length: int, batch_size: int, seed: int):
        if length < batch_size:
            raise ValueError(f"{length} items cannot fill one batch of {batch_size}")
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.batches_per_epoch = length // batch_size
        self._next_batch = 0

    def start_at(self, batch_index: int) -> None:
        """Begin the next iteration at global batch ``batch_index`` (counted from the first)."""
        if batch_index < 0:
            raise ValueError(f"batch_index must be >= 0, got {batch_index}")
        self._next_batch = batch_index

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.length)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size  # whole batches only (drop_last)

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self._next_batch, self.batches_per_epoch)
        # Claimed when iteration starts, so an iterator Lightning creates and drops costs nothing.
        self._next_batch = (epoch + 1) * self.batches_per_epoch
        order = self.epoch_order(epoch)[offset * self.batch_size : len(self)]
        yield from order.tolist()
