"""LightningDataModule over the store format: images scaled to [-1, 1], resumable shuffling."""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genlab.data.sampling import ResumableShuffleSampler
from genlab.data.store import check_labels, read_meta, read_split
from genlab.errors import DatasetError


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range every generator here outputs (tanh)."""
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]; the inverse of ``to_unit_range``."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


class ImageDataModule(pl.LightningDataModule):
    def __init__(
        self,
        directory: str | os.PathLike,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int | None = None,
        channels: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch size must be > 0, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"the number of loader workers must be >= 0, got {num_workers}")
        self.directory = directory
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.expected_size = image_size
        self.expected_channels = channels
        self.seed = seed
        self.train_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        meta = read_meta(self.directory)
        for key, expected in (
            ("image_size", self.expected_size),
            ("channels", self.expected_channels),
        ):
            if expected is not None and meta[key] != expected:
                raise DatasetError(
                    f"{self.directory} holds {key}={meta[key]} but the config asks for {expected}; "
                    f"re-run the fetch stage with this config or set data.{key}={meta[key]}"
                )
        split = read_split(self.directory, "train")
        if len(split.labels) < self.batch_size:
            raise DatasetError(
                f"data.batch_size={self.batch_size} is larger than the {len(split.labels)} "
                f"training images in {self.directory}; lower data.batch_size"
            )
        listed = meta.get("classes")
        if isinstance(listed, list) and listed:
            check_labels(split.labels, len(listed), f"{self.directory}/train")
        images = to_unit_range(torch.from_numpy(split.images))
        self.train_set = TensorDataset(images, torch.from_numpy(split.labels))

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        sampler = ResumableShuffleSampler(len(self.train_set), self.batch_size, self.seed)
        sampler.start_at(self._batches_already_trained())
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Each iter() draws the workers' base seed from this generator; without one it
            # would come from the global RNG, and a resumed run would drift by one draw.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _batches_already_trained(self) -> int:
        """On a single-process resume, the batches the checkpoint had consumed; else 0.

        Under DDP Lightning shards this sampler's order per rank, and a resume starts from the
        beginning of the data order (documented in the README's reproducibility section).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size != 1:
            return 0
        module = trainer.lightning_module
        return int(getattr(module, "training_steps", trainer.global_step))
