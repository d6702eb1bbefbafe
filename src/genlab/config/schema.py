"""Typed shapes of the config sections that are not ``_target_`` nodes.

Fields carry types only (``MISSING``): every value lives once, in conf/. ``__post_init__`` checks
ranges; it runs when ``OmegaConf.to_object`` builds these classes during validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from genlab.errors import RangeError
from genlab.metric_keys import OBJECTIVES, RANKABLE


def _require(condition: bool, key: str, rule: str, value: Any) -> None:
    if not condition:
        raise RangeError(f"`{key}` must be {rule}, got {value!r}")


@dataclass
class PathsConfig:
    data_dir: str = MISSING
    download_dir: str = MISSING
    run_dir: str = MISSING
    metrics_dir: str = MISSING
    export_dir: str = MISSING
    classifier: str = MISSING
    cache_dir: str = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    dir: str = MISSING
    source: Any = MISSING

    def __post_init__(self) -> None:
        _require(self.image_size >= 8, "data.image_size", ">= 8", self.image_size)
        _require(self.channels in (1, 3), "data.channels", "1 (gray) or 3 (RGB)", self.channels)
        _require(self.batch_size > 0, "data.batch_size", "> 0", self.batch_size)
        _require(self.num_workers >= 0, "data.num_workers", ">= 0", self.num_workers)


@dataclass
class SpeedConfig:
    channels_last: bool = MISSING
    compile: bool = MISSING
    threads: int | None = MISSING

    def __post_init__(self) -> None:
        _require(
            self.threads is None or self.threads >= 1,
            "train.speed.threads",
            "null or >= 1",
            self.threads,
        )


@dataclass
class HealthConfig:
    window: int = MISSING
    overpower_accuracy: float = MISSING
    collapse_diversity: float = MISSING

    def __post_init__(self) -> None:
        _require(self.window >= 1, "train.health.window", ">= 1", self.window)
        _require(
            0 < self.overpower_accuracy <= 1,
            "train.health.overpower_accuracy",
            "in (0, 1]",
            self.overpower_accuracy,
        )
        _require(
            self.collapse_diversity >= 0,
            "train.health.collapse_diversity",
            ">= 0",
            self.collapse_diversity,
        )


@dataclass
class ObjectiveConfig:
    metric: str | None = MISSING
    num_samples: int = MISSING

    def __post_init__(self) -> None:
        _require(
            self.metric is None or self.metric in OBJECTIVES,
            "train.objective.metric",
            f"null or one of {list(OBJECTIVES)}",
            self.metric,
        )
        _require(self.num_samples >= 2, "train.objective.num_samples", ">= 2", self.num_samples)


@dataclass
class TrainConfig:
    steps: int = MISSING
    sample_every_n_steps: int = MISSING
    checkpoint_every_n_steps: int = MISSING
    num_sample_images: int = MISSING
    resume: bool = MISSING
    speed: SpeedConfig = MISSING
    health: HealthConfig = MISSING
    objective: ObjectiveConfig = MISSING

    def __post_init__(self) -> None:
        _require(self.steps > 0, "train.steps", "> 0", self.steps)
        for key in ("sample_every_n_steps", "checkpoint_every_n_steps", "num_sample_images"):
            value = getattr(self, key)
            _require(value > 0, f"train.{key}", "> 0", value)


@dataclass
class MemorizationConfig:
    quantile: float = MISSING
    pairs: int = MISSING

    def __post_init__(self) -> None:
        _require(
            0 < self.quantile < 1, "evaluate.memorization.quantile", "in (0, 1)", self.quantile
        )
        _require(self.pairs > 0, "evaluate.memorization.pairs", "> 0", self.pairs)


@dataclass
class EvaluateConfig:
    num_samples: int = MISSING
    sample_seed: int = MISSING
    batch_size: int = MISSING
    kid_subset_size: int = MISSING
    kid_subsets: int = MISSING
    untrained_baseline: bool = MISSING
    memorization: MemorizationConfig = MISSING

    def __post_init__(self) -> None:
        _require(self.num_samples >= 2, "evaluate.num_samples", ">= 2", self.num_samples)
        for key in ("batch_size", "kid_subset_size", "kid_subsets"):
            value = getattr(self, key)
            _require(value > 0, f"evaluate.{key}", "> 0", value)


@dataclass
class ExportConfig:
    parity_seed: int = MISSING
    parity_atol: float = MISSING
    grid_images: int = MISSING
    onnx_opset: int = MISSING

    def __post_init__(self) -> None:
        _require(self.parity_atol > 0, "export.parity_atol", "> 0", self.parity_atol)
        _require(self.grid_images > 0, "export.grid_images", "> 0", self.grid_images)
        _require(7 <= self.onnx_opset <= 23, "export.onnx_opset", "in [7, 23]", self.onnx_opset)


@dataclass
class ClassifierTrainingConfig:
    feature_dim: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    unlabelled: str = MISSING

    def __post_init__(self) -> None:
        _require(
            self.unlabelled in ("self_supervised", "fail"),
            "metrics.classifier.unlabelled",
            "self_supervised or fail",
            self.unlabelled,
        )
        for key in ("feature_dim", "epochs", "batch_size"):
            value = getattr(self, key)
            _require(value > 0, f"metrics.classifier.{key}", "> 0", value)
        _require(self.lr > 0, "metrics.classifier.lr", "> 0", self.lr)


EXTRACTORS = ("classifier", "inception")


@dataclass
class MetricsConfig:
    extractor: str = MISSING
    weights_path: str | None = MISSING
    classifier: ClassifierTrainingConfig | None = MISSING

    def __post_init__(self) -> None:
        _require(
            self.extractor in EXTRACTORS,
            "metrics.extractor",
            f"one of {EXTRACTORS}",
            self.extractor,
        )
        if self.extractor == "classifier":
            _require(
                self.classifier is not None and self.weights_path is not None,
                "metrics.classifier and metrics.weights_path",
                "set when metrics.extractor=classifier",
                None,
            )


LOGGER_BACKENDS = ("wandb", "csv")
WANDB_MODES = ("auto", "online", "offline", "disabled")


@dataclass
class LoggerConfig:
    backend: str = MISSING
    project: str | None = None
    entity: str | None = None
    mode: str = "auto"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    init_timeout: float = 30.0
    lightning: Any = MISSING  # named _target_ nodes: checked against their signatures

    def __post_init__(self) -> None:
        _require(
            self.backend in LOGGER_BACKENDS,
            "logger.backend",
            f"one of {LOGGER_BACKENDS}",
            self.backend,
        )
        _require(self.mode in WANDB_MODES, "logger.mode", f"one of {WANDB_MODES}", self.mode)
        _require(self.init_timeout > 0, "logger.init_timeout", "> 0", self.init_timeout)


@dataclass
class CompareConfig:
    models: list[str] | None = MISSING  # null: pipeline.models from params_file
    params_file: str = MISSING
    out_dir: str = MISSING
    rank_by: str = MISSING

    def __post_init__(self) -> None:
        _require(self.rank_by in RANKABLE, "compare.rank_by", f"one of {RANKABLE}", self.rank_by)
        if self.models is not None:
            _require(len(self.models) > 0, "compare.models", "a non-empty list", self.models)


@dataclass
class ReportConfig:
    leaderboard: str = MISSING
    runs_dir: str = MISSING
    out_html: str = MISSING
    curves_dir: str = MISSING
    title: str = MISSING


@dataclass
class RootConfig:
    seed: int = MISSING
    paths: PathsConfig = MISSING
    data: DataConfig = MISSING
    model: Any = MISSING  # _target_ nodes: checked against constructor signatures
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: LoggerConfig = MISSING
    metrics: MetricsConfig = MISSING
    train: TrainConfig = MISSING
    evaluate: EvaluateConfig = MISSING
    export: ExportConfig = MISSING
    compare: CompareConfig = MISSING
    report: ReportConfig = MISSING

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", ">= 0", self.seed)
        _require(
            self.train.objective.metric is None or "objective" in (self.callbacks or {}),
            "train.objective.metric",
            "null unless the objective callback is configured (search=optuna adds it)",
            self.train.objective.metric,
        )
