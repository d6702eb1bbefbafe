"""The number a hyperparameter search minimizes: a quick FID / KID right after training.

Quick means ``train.objective.num_samples`` samples against the test split with the evaluation's
extractor; the evaluate stage's full figures stay the ones to report. A Lightning callback, so
that only a search (conf/search/optuna.yaml adds it to ``callbacks``) pulls evaluation code into
a training run.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from genlab.data.store import read_split
from genlab.evaluation.fidelity import compute_fidelity
from genlab.evaluation.settings import fidelity_options, sample_images
from genlab.metric_keys import OBJECTIVES
from genlab.tracking.identity import RunContext


class QuickObjective(pl.Callback):
    """Score the sampling generator once fitting ends (rank 0) and log the score.

    ``on_fit_end`` runs after Lightning's teardown, so the network is back on the CPU and the
    loop's own timings (``training_loop_s``) do not include this evaluation.
    """

    def __init__(self, context: RunContext, metric: str, num_samples: int):
        if metric not in OBJECTIVES:
            raise ValueError(f"the objective must be one of {list(OBJECTIVES)}, got {metric!r}")
        self.cfg = context.cfg
        self.metric = metric
        self.num_samples = num_samples
        self.result: dict[str, Any] | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        generator = pl_module.sampling_generator()
        was_training = generator.training
        generator.eval()
        try:
            samples = sample_images(
                generator,
                self.num_samples,
                self.cfg.evaluate.sample_seed,
                self.cfg.evaluate.batch_size,
                model=self.cfg.model.name,
            )
        finally:
            generator.train(was_training)
        scores = compute_fidelity(
            samples, read_split(self.cfg.data.dir, "test").images, **fidelity_options(self.cfg)
        )
        self.result = {
            "metric": self.metric,
            "value": float(scores[self.metric]),
            "num_samples": int(scores["num_samples"]),
            "extractor": self.cfg.metrics.extractor,
        }
        for logger in trainer.loggers:
            logger.log_metrics(
                {f"objective/{self.metric}": self.result["value"]}, step=pl_module.training_steps
            )

    def summary(self) -> dict[str, Any]:
        return {} if self.result is None else {"objective": self.result}
