"""Callbacks: fixed-latent sample grids (and reconstruction grids, for models that encode)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from genlab.credentials import COMPOSITE
from genlab.layout import RECONSTRUCTION_GRID, SAMPLE_GRID
from genlab.provenance import claimed_time, save_grid
from genlab.tracking.identity import RunContext


class SampleGridCallback(pl.Callback):
    """Every N training steps, render the same latents with the EMA generator and log the grid.

    Fixed latents make the grids comparable across steps and runs. A model with a
    ``reconstruct`` method (the VAE) also gets a grid of fixed training images (odd rows) above
    their reconstructions (even rows). Every grid is signed (C2PA); the reconstruction grid's
    digital source type is "composite with trained algorithmic media": half of it is real data.
    """

    def __init__(
        self,
        every_n_steps: int,
        num_images: int,
        out_dir: str | Path,
        seed: int,
        provenance: dict[str, str],
    ):
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.provenance = provenance
        # the time every grid of this run claims (unless SOURCE_DATE_EPOCH says otherwise):
        # when the run started, as its record says or as this callback saw it, not each render
        self.started = provenance.get("started") or datetime.now(timezone.utc).isoformat(
            timespec="seconds"
        )

    @classmethod
    def for_run(
        cls, context: RunContext, every_n_steps: int, num_images: int, seed: int
    ) -> SampleGridCallback:
        """The grids of one run: into its samples folder, labelled with its provenance."""
        return cls(every_n_steps, num_images, context.layout.samples, seed, context.provenance)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        step = pl_module.training_steps
        is_last = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if step % self.every_n_steps == 0 or is_last:
            self.render(trainer, pl_module, step)

    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> Path | None:
        if not trainer.is_global_zero:
            return None
        z = pl_module.sample_latents(self.num_images, torch.Generator().manual_seed(self.seed))
        images = pl_module.generate(z).cpu()  # a conditional model: balanced labels 0, 1, ...
        path = self.out_dir / SAMPLE_GRID.format(step=step)
        created = claimed_time(self.started)
        provenance = {**self.provenance, "step": str(step), "created": created}
        save_grid(images, path, provenance, nrow=pl_module.num_classes or ROW)  # a class a column
        self._log_image(trainer, "samples", path, f"sampling generator, step {step}")
        if hasattr(pl_module, "reconstruct"):
            originals, labels = self._fixed_training_images(trainer)
            labels = labels if pl_module.num_classes else None
            pairs = _interleave_rows(originals, pl_module.reconstruct(originals, labels).cpu())
            recon_path = self.out_dir / RECONSTRUCTION_GRID.format(step=step)
            # Half of this grid is training data: a composite, without the "machine-made" mark.
            save_grid(
                pairs, recon_path, provenance, nrow=ROW, watermark=False, source_type=COMPOSITE
            )
            self._log_image(trainer, "reconstructions", recon_path, f"rows: data / recon, {step}")
        return path

    def _fixed_training_images(self, trainer: pl.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = trainer.datamodule.train_set
        count = min(self.num_images // 2, len(dataset))
        images, labels = zip(*(dataset[i] for i in range(count)), strict=True)
        return torch.stack(images), torch.stack(labels)

    @staticmethod
    def _log_image(trainer: pl.Trainer, key: str, path: Path, caption: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=key, images=[str(path)], step=trainer.global_step, caption=[caption]
                )


ROW = 8


def _interleave_rows(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Rows of ROW originals, each followed by the row of their reconstructions."""
    rows = []
    for start in range(0, len(originals), ROW):
        rows += [originals[start : start + ROW], reconstructions[start : start + ROW]]
    return torch.cat(rows)


class TrainingLoopTimer(pl.Callback):
    """Seconds spent in the training loop itself (Lightning's setup and teardown excluded), the
    figure training throughput is computed from."""

    def __init__(self):
        self.started: float | None = None
        self.seconds: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.started is not None:
            self.seconds = time.perf_counter() - self.started

    def summary(self) -> dict[str, float | None]:
        return {"training_loop_s": None if self.seconds is None else round(self.seconds, 2)}
