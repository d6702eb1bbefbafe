"""Callbacks: fixed-latent sample grids during training."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger


class SampleGridCallback(pl.Callback):
    """Every N training steps, render the same latents with the EMA generator and log the grid.

    Fixed latents make the grids comparable across steps and runs.
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

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        step = pl_module.training_steps
        is_last = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if step % self.every_n_steps == 0 or is_last:
            self.render(trainer, pl_module, step)

    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> Path | None:
        if not trainer.is_global_zero:
            return None
        from genlab.export.provenance import save_grid

        z = pl_module.sample_latents(self.num_images, torch.Generator().manual_seed(self.seed))
        images = pl_module.generate(z).cpu()
        path = self.out_dir / f"step_{step:06d}.png"
        save_grid(images, path, {**self.provenance, "step": str(step)})
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="samples",
                    images=[str(path)],
                    step=trainer.global_step,
                    caption=[f"EMA generator, step {step}"],
                )
        return path
