"""Typed shapes of the config sections that are not ``_target_`` nodes.

Fields carry types only (``MISSING``): every value lives once, in conf/. ``__post_init__`` checks
ranges; it runs when ``OmegaConf.to_object`` builds these classes during validation.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from genlab.config.hydra_runtime import project_root
from genlab.errors import RangeError
from genlab.io import protected_folder
from genlab.metric_keys import OBJECTIVES, RANKABLE


def _require(condition: bool, key: str, rule: str, value: Any) -> None:
    if not condition:
        raise RangeError(f"`{key}` must be {rule}, got {value!r}")


def _full_path(value: str) -> Path:
    """``value`` resolved against the project, without following links (a data/ folder that
    is a link to a larger disk stays inside the project)."""
    return Path(os.path.abspath(project_root() / value))


#: Every config key naming a path genlab writes: checked by ``_require_output_path``.
OUTPUT_PATHS = (
    *(f"paths.{key}" for key in ("data_dir", "download_dir", "run_dir", "metrics_dir")),
    *(f"paths.{key}" for key in ("export_dir", "classifier", "cache_dir")),
    "data.dir",
    "compare.out_dir",
    "report.out_html",
    "report.curves_dir",
)


def _require_output_path(value: str, key: str, outside_project: bool) -> None:
    """An output path must name something of its own inside the project: not empty, not the
    project folder (an export swapped in there replaced the project, `.git` included), not
    above it, and not out of it, through `..` (``paths.run_dir=../../etc``) or as an absolute
    path elsewhere -- unless ``paths.outside_project`` says that is meant (a scratch disk);
    genlab then still replaces only folders it made there (``io.atomic_dir``)."""
    root = project_root()
    if not value.strip():
        raise RangeError(
            f"`{key}` must name a path inside the project, got {value!r}: empty means the "
            f"project folder itself ({root}), which this output would replace"
        )
    full = _full_path(value)
    reason = protected_folder(full, root)
    if reason:
        raise RangeError(
            f"`{key}` must name a folder of its own inside the project, got {value!r}: "
            f"{reason}, which this output would replace. Give a folder of its own (the "
            f"default in conf/ shows one)"
        )
    if not Path(value).is_absolute() and os.path.normpath(value).split(os.sep)[0] == "..":
        raise RangeError(
            f"`{key}` must stay inside the project, got {value!r}: `..` leads out of {root}. "
            f"Give a path inside the project"
        )
    if not outside_project and not _within(full, Path(os.path.abspath(root))):
        raise RangeError(
            f"`{key}` must be inside the project ({root}), got {value!r}. To write there on "
            f"purpose (a scratch disk), set paths.outside_project=true (or the environment "
            f"variable GENLAB_OUTPUTS_OUTSIDE_PROJECT=true)"
        )


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


@dataclass
class PathsConfig:
    run_name: str = MISSING
    data_dir: str = MISSING
    download_dir: str = MISSING
    run_dir: str = MISSING
    metrics_dir: str = MISSING
    export_dir: str = MISSING
    classifier: str = MISSING
    cache_dir: str = MISSING
    outside_project: bool = MISSING

    def __post_init__(self) -> None:
        # a file name part (metrics/<run name>.json): no folder, no way out of its folder
        name = self.run_name
        _require(
            bool(name)
            and name.isprintable()
            and "/" not in name
            and "\\" not in name
            and name not in (".", ".."),
            "paths.run_name",
            "a plain name (no `/`, `\\`, `..` or control characters), like <model>-seed<seed>",
            name,
        )


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
class BootstrapConfig:
    rounds: int = MISSING
    level: float = MISSING
    seed: int = MISSING

    def __post_init__(self) -> None:
        _require(
            self.rounds == 0 or self.rounds >= 2,
            "evaluate.bootstrap.rounds",
            "0 (no intervals) or >= 2",
            self.rounds,
        )
        _require(0 < self.level < 1, "evaluate.bootstrap.level", "in (0, 1)", self.level)
        _require(self.seed >= 0, "evaluate.bootstrap.seed", ">= 0", self.seed)


@dataclass
class EvaluateConfig:
    num_samples: int = MISSING
    sample_seed: int = MISSING
    batch_size: int = MISSING
    kid_subset_size: int = MISSING
    kid_subsets: int = MISSING
    nearest_k: int = MISSING
    bootstrap: BootstrapConfig = MISSING
    sample_counts: list[int] = MISSING
    sample_count_draws: int = MISSING
    untrained_baseline: bool = MISSING
    memorization: MemorizationConfig = MISSING

    def __post_init__(self) -> None:
        _require(self.num_samples >= 2, "evaluate.num_samples", ">= 2", self.num_samples)
        for key in ("batch_size", "kid_subset_size", "kid_subsets", "nearest_k"):
            value = getattr(self, key)
            _require(value > 0, f"evaluate.{key}", "> 0", value)
        _require(
            self.sample_count_draws > 0,
            "evaluate.sample_count_draws",
            "> 0",
            self.sample_count_draws,
        )
        _require(
            self.num_samples > self.nearest_k,
            "evaluate.num_samples",
            f"> evaluate.nearest_k ({self.nearest_k}): the k-NN balls need more points",
            self.num_samples,
        )
        for count in self.sample_counts:  # counts above num_samples are reported skipped
            _require(count >= 2, "evaluate.sample_counts", "counts >= 2", list(self.sample_counts))


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
    seeds: list[int] | None = MISSING  # null: pipeline.seeds from params_file
    params_file: str = MISSING
    out_dir: str = MISSING
    rank_by: str = MISSING

    def __post_init__(self) -> None:
        _require(self.rank_by in RANKABLE, "compare.rank_by", f"one of {RANKABLE}", self.rank_by)
        if self.models is not None:
            _require(len(self.models) > 0, "compare.models", "a non-empty list", self.models)
        if self.seeds is not None:
            _require(len(self.seeds) > 0, "compare.seeds", "a non-empty list", self.seeds)


@dataclass
class ReportConfig:
    leaderboard: str = MISSING
    runs_dir: str = MISSING
    out_html: str = MISSING
    curves_dir: str = MISSING
    title: str = MISSING
    smoothing: float = MISSING

    def __post_init__(self) -> None:
        _require(0.0 <= self.smoothing < 1.0, "report.smoothing", "in [0, 1)", self.smoothing)


@dataclass
class RootConfig:
    seed: int = MISSING
    split_seed: int = MISSING
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
        outside = self.paths.outside_project
        for key in OUTPUT_PATHS:
            _require_output_path(operator.attrgetter(key)(self), key, outside_project=outside)
        self._check_source_is_not_an_output()

    def _check_source_is_not_an_output(self) -> None:
        """The images a folder source reads are the user's own: no output may be written into
        them, and no folder genlab replaces whole may be them or hold them
        (``data=folder data.name=images`` made data.dir = data/images = the source, and the
        fetch swapped the user's cats/ and dogs/ for npz files)."""
        source = self.data.source
        if not isinstance(source, dict) or not source.get("path") or source.get("url"):
            return
        images = _full_path(str(source["path"]))
        replaced = {
            "data.dir": self.data.dir,
            "paths.export_dir": self.paths.export_dir,
            "report.curves_dir": self.report.curves_dir,
        }
        written_into = {
            **{f"paths.{k}": getattr(self.paths, k) for k in ("run_dir", "metrics_dir")},
            **{f"paths.{k}": getattr(self.paths, k) for k in ("cache_dir", "download_dir")},
            "paths.classifier": self.paths.classifier,
            "compare.out_dir": self.compare.out_dir,
            "report.out_html": self.report.out_html,
        }
        if source.get("download_dir"):
            written_into["data.source.download_dir"] = str(source["download_dir"])
        for key, value in {**replaced, **written_into}.items():
            output = _full_path(value)
            holds_images = key in replaced and _within(images, output)
            if _within(output, images) or holds_images:
                raise RangeError(
                    f"`{key}` ({value}) {'is or holds' if holds_images else 'is inside'} the "
                    f"images data.source.path reads ({source['path']}): genlab would "
                    f"{'replace' if holds_images else 'write into'} your own files. Give "
                    f"`{key}` another path (with data=folder, data.name names the dataset "
                    f"folder data/<name>: pick a name other than your images' folder)"
                )
