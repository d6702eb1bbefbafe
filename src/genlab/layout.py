"""The name of every file and folder genlab writes, in one place.

Stages, callbacks, the report and the tests all ask here; dvc.yaml spells the same paths for
DVC, and a test (tests/unit/test_layout.py) checks that it agrees with this module.
The folders themselves (``paths.run_dir``, ``paths.metrics_dir``, ...) come from conf/paths.yaml;
this module names what lies inside them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# -- every folder genlab builds whole and swaps in (io.atomic_dir): only a folder holding this
# marker is ever replaced, so a mistyped path can never delete the user's own files
OUTPUT_MARKER = ".genlab-output"

# -- a training run's folder (paths.run_dir: runs/<run name>, or a sweep job's own folder) ---
GENERATOR_FILE = "generator.safetensors"
OLD_GENERATOR_FILE = "generator.pt"  # the pickle format of earlier versions: refused, never opened
TRAIN_SUMMARY_FILE = "train_summary.json"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
CSV_DIR = "csv"  # Lightning's CSVLogger: <run_dir>/csv/metrics.csv
METRICS_CSV = "metrics.csv"
WANDB_DIR = "wandb"

# -- inside checkpoints/ ----------------------------------------------------------------------
LAST_CHECKPOINT = "last.ckpt"
# beside checkpoints/: checkpoints genlab cannot prove are kept elsewhere (an unfinished run's,
# a finished run's whose generator file is gone, files genlab did not write), moved aside when a
# run starts fresh, never deleted; .dvcignore keeps them out of the report stage's deps
STALE_CHECKPOINTS_SUFFIX = ".stale-{stamp}-{run_id}"
TRAINING_FINGERPRINT_FILE = "training_fingerprint"
RUN_ID_FILE = "run_id"

# -- inside samples/: fixed-latent grids, one per sampled training step ------------------------
SAMPLE_GRID = "step_{step:06d}.png"
RECONSTRUCTION_GRID = "reconstructions_step_{step:06d}.png"


def grid_pattern(name_format: str) -> re.Pattern[str]:
    """The regex matching file names made by ``name_format`` (group 1: the step)."""
    prefix, suffix = name_format.split("{step:06d}")
    return re.compile(rf"^{re.escape(prefix)}(\d+){re.escape(suffix)}$")


# -- one run = one model trained from one seed (params.yaml: pipeline.models x pipeline.seeds) ---
RUN_NAME = "{model}-seed{seed}"  # runs/<run name>, metrics/<run name>.json, exports/<run name>


def run_name(model: str, seed: int) -> str:
    """The name of one (model, seed) run: its run, metrics and export files are named after it
    (conf/paths.yaml's ``paths.run_name``; dvc.yaml spells the same for its stage instances)."""
    return RUN_NAME.format(model=model, seed=seed)


def stage_instance(stage: str, model: str, seed: int | None) -> str:
    """A per-run DVC stage (``train@dcgan-0``: dvc.yaml's matrix over pipeline.models x
    pipeline.seeds); ``train@dcgan-<seed>`` when the seed is not known."""
    return f"{stage}@{model}-{'<seed>' if seed is None else seed}"


# -- the workspace's own folders, as the default config puts them: conf/paths.yaml holds the same
# defaults (paths.run_dir = runs/<run name>, paths.metrics_dir = metrics) for the stages, and
# conf/hydra_run.yaml puts sweeps under multirun/ (hydra.sweep.dir); these names are for code
# that reads a workspace without composing a config (`genlab runs`, the run folder resolver)
RUNS_DIR = "runs"
METRICS_DIR = "metrics"
MULTIRUN_DIR = "multirun"

# -- Hydra's output folder of one run or sweep job ------------------------------------------------
HYDRA_DIR = ".hydra"  # Hydra's own record of the job: config.yaml, hydra.yaml, overrides.yaml
HYDRA_CONFIG_FILE = "config.yaml"  # in HYDRA_DIR: the job's composed config
HYDRA_SETTINGS_FILE = "hydra.yaml"  # in HYDRA_DIR: Hydra's own config of the job
HYDRA_OVERRIDES_FILE = "overrides.yaml"  # in HYDRA_DIR: the job's task overrides
RUN_LINKS_FILE = "genlab_run.json"  # the run id, its W&B run and its DVC experiment
JOB_STATUS_FILE = "genlab_job.json"  # a sweep job's status
SWEEP_SUMMARY_FILE = "sweep_summary.json"  # in the sweep folder
SWEEP_JOB_RUN_DIR = "run"  # a sweep job's run folder, inside its Hydra output folder
# -- a sweep folder (hydra.sweep.dir) -------------------------------------------------------------
OPTUNA_STUDY_FILE = "optuna.db"  # search=optuna: the study (SQLite), resumed by the same command
OPTIMIZATION_RESULTS_FILE = "optimization_results.yaml"  # Hydra's Optuna sweeper: the best trial
MULTIRUN_YAML = "multirun.yaml"  # Hydra: the sweep's config and its task overrides
# -- `genlab runs --html`: the page of every run in a workspace (reports/ is not a DVC output) --
RUNS_PAGE = "reports/runs.html"

# -- content credentials (C2PA) ------------------------------------------------------------------
# a model file's detached manifest lies beside it: generator.onnx -> generator.onnx.c2pa
DETACHED_MANIFEST_SUFFIX = ".c2pa"
# the signing identity's folder (outside any project: GENLAB_KEYS_DIR or ~/.config/genlab/keys)
ROOT_CERT_FILE = "root.pem"  # the trust anchor people are given to verify with
ROOT_KEY_FILE = "root.key"  # 0600; only needed to issue a new signing certificate
SIGNER_CERT_FILE = "signer.pem"  # the signing certificate, then the root: the chain c2pa embeds
SIGNER_KEY_FILE = "signer.key"  # 0600

# -- the evaluate stage (paths.metrics_dir) ---------------------------------------------------
METRICS_FILE = "{run}.json"  # {run}: run_name(model, seed)
NEAREST_TRAINING_IMAGE = "{run}_nearest_training.png"
CLASS_GRID = "{run}_classes.png"  # a row per class, a column per latent seed (same z per column)

# -- `genlab generate` without --out: generated/<the export folder's name> ---------------------
GENERATED_DIR = "generated"

# -- the export folder (paths.export_dir) -------------------------------------------------------
EXPORT_TORCHSCRIPT = "generator.torchscript.pt"
EXPORT_ONNX = "generator.onnx"
EXPORT_SAMPLES = "samples.png"
EXPORT_RECORD = "export.json"
MODEL_CARD = "MODEL_CARD.md"
EXPORT_METADATA_ENTRY = "genlab.json"  # inside the TorchScript archive: provenance, latent size

# -- the compare stage (compare.out_dir) ------------------------------------------------------
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
SCORES_CSV = "scores.csv"


# -- the report stage: one table per training metric, a column per model (report.curves_dir) --
def curve_table(metric: str) -> str:
    """``train/loss_g`` -> ``train_loss_g.csv``: the name dvc.yaml's cross-model plots use."""
    return metric.replace("/", "_") + ".csv"


# -- the fetched dataset (data.dir) -----------------------------------------------------------
SPLIT_FILE = "{split}.npz"
DATA_META_FILE = "meta.json"
DATA_MANIFEST_FILE = "manifest.json"  # a folder source: file, sha256, bytes, label, split
DATA_DUPLICATES_FILE = "duplicates.json"  # a folder source: identical and near-identical images


def classifier_report(weights: str | os.PathLike) -> Path:
    """The train_classifier stage's JSON record beside its weights (``<data>.pt`` -> ``.json``)."""
    return Path(weights).with_suffix(".json")


@dataclass(frozen=True)
class RunLayout:
    """Where each part of one training run lives, under its run folder."""

    root: Path

    @classmethod
    def at(cls, run_dir: str | os.PathLike) -> RunLayout:
        return cls(Path(run_dir))

    @property
    def generator(self) -> Path:
        return self.root / GENERATOR_FILE

    @property
    def summary(self) -> Path:
        return self.root / TRAIN_SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_DIR

    @property
    def metrics_csv(self) -> Path:
        return self.root / CSV_DIR / METRICS_CSV

    @property
    def wandb(self) -> Path:
        return self.root / WANDB_DIR

    def sample_grid(self, step: int) -> Path:
        return self.samples / SAMPLE_GRID.format(step=step)

    def reconstruction_grid(self, step: int) -> Path:
        return self.samples / RECONSTRUCTION_GRID.format(step=step)

    def dvc_outputs(self) -> set[Path]:
        """What the train stage hands to DVC (outs, metrics and plots). Not the checkpoint
        folder: a machine-local crash-recovery area, never pushed (dvc.yaml says why)."""
        return {self.generator, self.samples, self.summary, self.metrics_csv}


def metrics_file(metrics_dir: str | os.PathLike, run: str) -> Path:
    """The evaluate stage's record of one run (``run``: ``run_name(model, seed)``)."""
    return Path(metrics_dir) / METRICS_FILE.format(run=run)


def nearest_training_image(metrics_dir: str | os.PathLike, run: str) -> Path:
    return Path(metrics_dir) / NEAREST_TRAINING_IMAGE.format(run=run)


def class_grid(metrics_dir: str | os.PathLike, run: str) -> Path:
    """The evaluate stage's class x seed sample grid (every run: see evaluation/per_class.py)."""
    return Path(metrics_dir) / CLASS_GRID.format(run=run)


def leaderboard_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {
        "json": out_dir / LEADERBOARD_JSON,
        "markdown": out_dir / LEADERBOARD_MD,
        "scores": out_dir / SCORES_CSV,
    }
