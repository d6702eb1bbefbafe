"""train_classifier: the domain CNN whose features drive the offline FID / IS / KID."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from genlab.data.store import read_split
from genlab.errors import StageInputError
from genlab.evaluation.classifier_training import (
    SUPERVISED_OBJECTIVE,
    save_classifier,
    train_classifier,
)
from genlab.evaluation.self_supervised import OBJECTIVE, rotation_task
from genlab.io import write_json
from genlab.layout import classifier_report
from genlab.stages.entry import stage_main

INSTANTIATES: tuple[str, ...] = ()  # builds nothing from a _target_ node


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_train_classifier, cfg, INSTANTIATES)


def run_train_classifier(cfg: DictConfig) -> dict[str, Any]:
    settings = cfg.metrics.classifier
    if cfg.metrics.extractor != "classifier" or settings is None:
        raise SystemExit("train_classifier: metrics.extractor is not 'classifier'; nothing to do")
    train, test = read_split(cfg.data.dir, "train"), read_split(cfg.data.dir, "test")
    objective = SUPERVISED_OBJECTIVE
    if int(train.labels.min()) < 0:
        if settings.unlabelled != "self_supervised":
            raise StageInputError(
                f"{cfg.data.dir} has unlabelled images and the classifier extractor needs "
                f"labels. Set metrics.classifier.unlabelled=self_supervised (a rotation-"
                f"prediction network trained on the images), or use metrics=inception."
            )
        print(f"train_classifier: {cfg.data.dir} is unlabelled; training the {OBJECTIVE}")
        train, test, objective = rotation_task(train), rotation_task(test), OBJECTIVE
    model, report = train_classifier(
        train,
        test,
        feature_dim=settings.feature_dim,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=cfg.seed,
    )
    report["objective"] = objective
    path = Path(cfg.paths.classifier)
    save_classifier(model, path, report)
    write_json(classifier_report(path), report)
    print(f"train_classifier: test accuracy {report['test_accuracy']:.4f} -> {path}")
    return report
