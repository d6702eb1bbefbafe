"""GAN health: is the discriminator overpowering the generator, has the generator collapsed?

Two signals, both logged every step by ``GANModule``:

* ``train/d_real_accuracy`` (r_t, Karras et al. 2020) and ``train/d_fake_accuracy``: the
  fraction of reals D scores positive and of fakes it scores negative. Both pinned near 1 means
  D separates perfectly and G's gradients vanish.
* ``train/sample_diversity``: mean pairwise distance between the batch's generated images over
  the same for its real images. Near 0 means G outputs nearly one image (mode collapse).

``GANHealthMonitor`` averages them over a window and warns once per episode, so a researcher
sees the problem in the console and in W&B long before the FID says so.
"""

from __future__ import annotations

import logging
from collections import deque

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class GANHealthMonitor(pl.Callback):
    """Warn (once per episode) when D overpowers G or G collapses, and log both as 0/1 flags."""

    def __init__(
        self, window: int = 100, overpower_accuracy: float = 0.99, collapse_diversity: float = 0.1
    ):
        if window < 1:
            raise ValueError(f"health window must be >= 1 step, got {window}")
        self.window = window
        self.overpower_accuracy = overpower_accuracy
        self.collapse_diversity = collapse_diversity
        self._history: dict[str, deque[float]] = {}
        self.active: dict[str, bool] = {"d_overpowering": False, "mode_collapse": False}
        self.warnings: list[str] = []

    def _window_mean(self, key: str, value: float) -> float | None:
        history = self._history.setdefault(key, deque(maxlen=self.window))
        history.append(value)
        return sum(history) / len(history) if len(history) == self.window else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        metrics = trainer.callback_metrics
        if "train/sample_diversity" not in metrics:
            return  # not a GAN
        real = self._window_mean("real", float(metrics["train/d_real_accuracy"]))
        fake = self._window_mean("fake", float(metrics["train/d_fake_accuracy"]))
        diversity = self._window_mean("diversity", float(metrics["train/sample_diversity"]))
        if real is None or fake is None or diversity is None:
            return
        step = pl_module.training_steps
        self._update(
            pl_module,
            "d_overpowering",
            min(real, fake) >= self.overpower_accuracy,
            f"step {step}: the discriminator is overpowering the generator: over the last "
            f"{self.window} steps it called {real:.1%} of reals real and {fake:.1%} of fakes "
            f"fake, so the generator's gradients vanish. Try augment=diffaugment, "
            f"regularizer=r1, or a slower discriminator (its own model.discriminator_optim, "
            f"as model=dcgan_ttur has).",
        )
        self._update(
            pl_module,
            "mode_collapse",
            diversity < self.collapse_diversity,
            f"step {step}: mode collapse: generated images vary {diversity:.3f}x as much as "
            f"real ones over the last {self.window} steps (threshold "
            f"{self.collapse_diversity}); the generator outputs nearly one image. Check the "
            f"sample grids; try loss=hinge, augment=diffaugment or a lower learning rate.",
        )

    def _update(self, pl_module: pl.LightningModule, name: str, unhealthy: bool, message: str):
        pl_module.log(f"health/{name}", float(unhealthy))
        if unhealthy and not self.active[name]:
            self.warnings.append(message)
            if pl_module.trainer.is_global_zero:
                log.warning("GAN health: %s", message)
        self.active[name] = unhealthy
