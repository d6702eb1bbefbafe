"""train@<model>-<seed>: Lightning fit with resumable checkpoints, sample grids and W&B logging.

The steps are named below; what each callback and logger does lives in training/ and
tracking/, and which of them run is config (conf/callbacks/, conf/logger/).
"""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timezone
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genlab import credentials
from genlab.config.hydra_runtime import cpu_threads_per_job, project_root, resolved_config
from genlab.data.datamodule import ImageDataModule
from genlab.data.store import dataset_digest, read_meta
from genlab.errors import TrainingInterrupted
from genlab.io import write_json
from genlab.layout import RUN_LINKS_FILE, RunLayout
from genlab.models.base import GenerativeModule
from genlab.models.generator_file import require_shareable, save_generator
from genlab.stages.entry import stage_main
from genlab.tracking.identity import RunContext, code_state, run_links
from genlab.tracking.sweep import sweeper_return
from genlab.tracking.wandb_setup import finish_wandb_runs, wandb_run_url
from genlab.training.checkpoints import (
    prepare_checkpoint_dir,
    training_code,
    training_fingerprint,
)
from genlab.training.components import build_components, run_summaries
from genlab.training.interruption import AtomicCheckpointIO, cluster_plugins
from genlab.training.speed import apply_speed_options, set_cpu_threads

# Config sections this stage builds objects from (genlab.code_deps follows their _target_s).
INSTANTIATES = ("model", "trainer", "callbacks", "logger")

# Our checkpoints are meant to hold the state after each iteration's updates.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
# ResumableShuffleSampler restarts mid-epoch at the checkpoint's batch (tested bit-identical).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")


def main(cfg: DictConfig) -> Any:
    """The train entry: a sweeper gets the objective, a single run its summary."""
    return sweeper_return(cfg, stage_main(run_train, cfg, INSTANTIATES))


def run_train(cfg: DictConfig) -> dict[str, Any]:
    layout = RunLayout.at(cfg.paths.run_dir)
    pl.seed_everything(cfg.seed, workers=True)
    threads = set_cpu_threads(cfg.train.speed.threads or cpu_threads_per_job())
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    require_shareable(sampling_network_config(cfg, module), module.sampling_network_key)
    max_steps = cfg.train.steps * module.optimizer_steps_per_iteration
    context, resume = start_run(cfg, layout, max_steps)
    loggers: list[Any] = []
    succeeded = False
    try:
        loggers = build_components(cfg.logger.lightning, context)
        callbacks = build_components(cfg.callbacks, context)
        trainer: pl.Trainer = instantiate(
            cfg.trainer,
            max_steps=max_steps,
            callbacks=callbacks,
            logger=loggers,
            default_root_dir=str(layout.root),
            plugins=[AtomicCheckpointIO(), *cluster_plugins()],
        )
        batch_sizes = log_batch_sizes(trainer, loggers, cfg.data.batch_size)
        elapsed = fit(trainer, module, datamodule, layout, resume)
        context.links["wandb_url"] = wandb_run_url(loggers)
        summary = training_summary(context, module, trainer, resume, elapsed, batch_sizes)
        summary.update(cpu_threads=threads, **run_summaries([*callbacks, *loggers]))
        images_per_step = trainer.world_size * cfg.data.batch_size
        summary.update(throughput(summary, images_per_step, module))
        if trainer.is_global_zero:
            save_run(cfg, context, module, summary)
        for logger in loggers:
            logger.finalize("success")
        succeeded = True
        return summary
    finally:
        # Sweep jobs share one process (basic launcher): each must close its own W&B run, or
        # the next job's logger would silently log into it.
        finish_wandb_runs(loggers, succeeded)


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    return ImageDataModule(
        cfg.data.dir,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        image_size=cfg.data.image_size,
        channels=cfg.data.channels,
        seed=cfg.seed,
    )


def build_module(cfg: DictConfig) -> GenerativeModule:
    module = instantiate(cfg.model)
    speed = cfg.train.speed
    apply_speed_options(module, channels_last=speed.channels_last, compile=speed.compile)
    return module


def start_run(cfg: DictConfig, layout: RunLayout, max_steps: int) -> tuple[RunContext, bool]:
    """Settle the run: resume an unfinished run of the same config and code (and keep its id),
    or start fresh with a new id; record where each tool keeps it."""
    config = resolved_config(cfg)
    data_meta = read_meta(cfg.data.dir)
    fingerprint = training_fingerprint(config, data_meta, training_code(config))
    resume, run_id = prepare_checkpoint_dir(
        layout.checkpoints,
        fingerprint,
        cfg.train.resume,
        finished_at_global_step=max_steps,
        is_global_zero=rank_zero_only.rank == 0,  # from the env Lightning gives DDP children
    )
    links = run_links(run_id, layout.root)
    if rank_zero_only.rank == 0 and links["hydra_output_dir"]:
        write_json(f"{links['hydra_output_dir']}/{RUN_LINKS_FILE}", links)
    credentials.signing_identity()  # an unusable signing identity fails before step 1
    code = code_state(project_root())
    provenance = {
        "model": cfg.model.name,
        "run_id": run_id,
        "training_fingerprint": fingerprint,
        "code_version": code.version,
        # A record of the data as read, not a resume key: the fingerprint covers meta.json.
        "dataset_hash": dataset_digest(cfg.data.dir),
        "started": _now(),  # what its sample grids claim (provenance.claimed_time)
    }
    context = RunContext(
        cfg, config, run_id, layout, links, provenance, data_meta, code_changes=code.changes
    )
    return context, resume


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def log_batch_sizes(trainer: pl.Trainer, loggers: list[Any], batch_size: int) -> dict[str, int]:
    batch_sizes = {
        "world_size": trainer.world_size,
        "batch_size_per_device": batch_size,
        "batch_size_global": batch_size * trainer.world_size,
    }
    for logger in loggers:
        logger.log_hyperparams(batch_sizes)  # W&B config and csv/hparams.yaml
    return batch_sizes


def fit(
    trainer: pl.Trainer,
    module: GenerativeModule,
    datamodule: ImageDataModule,
    layout: RunLayout,
    resume: bool,
) -> float:
    """Train (from last.ckpt when resuming); seconds taken. SIGTERM leaves a checkpoint."""
    started = time.perf_counter()
    resume_from = str(layout.last_checkpoint) if resume else None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except SIGTERMException:
        raise TrainingInterrupted(
            f"stopped by SIGTERM at training step {module.training_steps}; saved "
            f"{layout.last_checkpoint}. Run the same command (or `dvc repro`) again to resume."
        ) from None
    return time.perf_counter() - started


def training_summary(
    context: RunContext,
    module: GenerativeModule,
    trainer: pl.Trainer,
    resume: bool,
    elapsed: float,
    batch_sizes: dict[str, int],
) -> dict[str, Any]:
    return {
        "run_id": context.run_id,
        "model": context.cfg.model.name,
        # what the generator is conditioned on (0: unconditional), beside the run's config
        "conditioning": module.conditioning,
        "num_classes": module.num_classes,
        "steps": module.training_steps,
        "resumed": resume,
        "resumed_from_step": module.start_step,
        "wall_time_s": round(elapsed, 2),
        "finished": _now(),  # what its export claims (provenance.claimed_time)
        **batch_sizes,
        "links": context.links,
        "code_changes": list(context.code_changes),
        "final": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }


def throughput(
    summary: dict[str, Any], images_per_step: int, module: GenerativeModule
) -> dict[str, float | None]:
    """Images per second of the training loop (setup excluded), all ranks together."""
    loop_seconds = summary.get("training_loop_s") or summary["wall_time_s"]
    images = images_per_step * (module.training_steps - module.start_step)
    return {
        "training_loop_s": loop_seconds,
        "images_per_s": round(images / loop_seconds, 1) if loop_seconds > 0 else None,
    }


def sampling_network_config(cfg: DictConfig, module: GenerativeModule) -> dict[str, Any]:
    """The resolved config of the z -> image network, as the generator file records it."""
    return OmegaConf.to_container(cfg.model[module.sampling_network_key], resolve=True)


def save_run(
    cfg: DictConfig, context: RunContext, module: GenerativeModule, summary: dict[str, Any]
) -> None:
    """generator.safetensors (the sampling network's tensors, its allow-listed class and
    arguments, the run record) and the summary."""
    record = {
        **context.provenance,
        "config": context.config,
        "data_meta": context.data_meta,
        "train": summary,
    }
    save_generator(
        context.layout.generator,
        module.sampling_generator(),
        sampling_network_config(cfg, module),
        record,
    )
    write_json(context.layout.summary, summary)
