"""The number a hyperparameter search minimizes: a quick FID / KID right after training.

Quick means ``train.objective.num_samples`` samples against the test split with the evaluation's
extractor; the evaluate stage's full figures stay the ones to report.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig


def quick_objective(generator: torch.nn.Module, cfg: DictConfig) -> dict[str, Any]:
    from genlab.data.store import read_split
    from genlab.evaluation.fidelity import compute_fidelity
    from genlab.stages.evaluate import fidelity_options, sample_images

    settings = cfg.train.objective
    was_training = generator.training
    generator.eval()
    try:
        samples = sample_images(
            generator, settings.num_samples, cfg.evaluate.sample_seed, cfg.evaluate.batch_size
        )
    finally:
        generator.train(was_training)
    scores = compute_fidelity(
        samples, read_split(cfg.data.dir, "test").images, **fidelity_options(cfg)
    )
    return {
        "metric": settings.metric,
        "value": float(scores[settings.metric]),
        "num_samples": int(scores["num_samples"]),
        "extractor": cfg.metrics.extractor,
    }


def sweeper_return(cfg: DictConfig, result: Any) -> Any:
    """What the train entry hands back to Hydra: the objective when one is configured.

    A failed or diverged job gives None, which the Optuna sweeper records as a FAIL trial and
    goes on (a NaN would make Optuna 2.x raise inside its own error handling).
    """
    if cfg.train.objective.metric is None:
        return result
    if not isinstance(result, dict) or "objective" not in result:
        return None
    value = result["objective"]["value"]
    return value if math.isfinite(value) else None
