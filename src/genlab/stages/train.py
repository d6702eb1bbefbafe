"""train@<model>: Lightning fit with resumable checkpoints, sample grids and W&B logging."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genlab.data.datamodule import ImageDataModule
from genlab.data.store import read_meta
from genlab.io import write_json
from genlab.models.generator_file import save_generator
from genlab.stages.entry import resolved_config
from genlab.tracking.identity import code_version, config_hash, run_links, source_hash
from genlab.tracking.sweep import cpu_threads_per_job
from genlab.tracking.wandb_setup import finish_wandb_runs, make_wandb_logger
from genlab.training.callbacks import SampleGridCallback, TrainingLoopTimer
from genlab.training.checkpoints import LAST, prepare_checkpoint_dir
from genlab.training.health import GANHealthMonitor
from genlab.training.interruption import (
    AtomicCheckpointIO,
    CheckpointOnSigterm,
    TrainingInterrupted,
)
from genlab.training.objective import quick_objective
from genlab.training.replicas import ReplicaConsistencyCheck
from genlab.training.reproducibility import DistinctRandomnessPerRank, RandomStateInCheckpoint
from genlab.training.speed import apply_speed_options, set_cpu_threads

log = logging.getLogger(__name__)

# Our checkpoints are meant to hold the state after each iteration's updates.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
# ResumableShuffleSampler restarts mid-epoch at the checkpoint's batch (tested bit-identical).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")

GENERATOR_FILE = "generator.pt"
PROGRESS_REFRESH_STEPS = 20
SUMMARY_FILE = "train_summary.json"
# In the Hydra output folder: the run id, its W&B run and its DVC experiment, side by side.
RUN_LINKS_FILE = "genlab_run.json"


def training_fingerprint(config: dict[str, Any], data_meta: dict[str, Any]) -> str:
    """What must match for a checkpoint to be resumed: everything that shapes the weights."""
    relevant = {key: config[key] for key in ("seed", "data", "model", "trainer")}
    relevant["steps"] = config["train"]["steps"]
    relevant["data_meta"] = data_meta
    relevant["source"] = source_hash()
    return config_hash(relevant)


def run_train(cfg: DictConfig) -> dict[str, Any]:
    config = resolved_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    pl.seed_everything(cfg.seed, workers=True)
    threads = set_cpu_threads(cfg.train.speed.threads or cpu_threads_per_job())

    datamodule = ImageDataModule(
        cfg.data.dir,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        image_size=cfg.data.image_size,
        channels=cfg.data.channels,
        seed=cfg.seed,
    )
    data_meta = read_meta(cfg.data.dir)
    module = instantiate(cfg.model)
    speed = cfg.train.speed
    apply_speed_options(module, channels_last=speed.channels_last, compile=speed.compile)
    steps_per_iteration = module.optimizer_steps_per_iteration

    fingerprint = training_fingerprint(config, data_meta)
    max_steps = cfg.train.steps * steps_per_iteration
    resume, run_id = prepare_checkpoint_dir(
        checkpoint_dir,
        fingerprint,
        cfg.train.resume,
        finished_at_global_step=max_steps,
        is_global_zero=rank_zero_only.rank == 0,  # from the env Lightning gives DDP children
    )
    links = run_links(run_id, run_dir)
    if rank_zero_only.rank == 0 and links["hydra_output_dir"]:
        write_json(Path(links["hydra_output_dir"]) / RUN_LINKS_FILE, links)
    provenance = {
        "model": cfg.model.name,
        "run_id": run_id,
        "config_hash": fingerprint,
        "code_version": code_version(),
    }

    loggers: list[Any] = [CSVLogger(str(run_dir), name="csv", version="")]
    if cfg.logger.backend == "wandb":
        wandb_logger = make_wandb_logger(
            cfg.logger,
            run_dir,
            run_id=run_id,
            run_name=f"{cfg.model.name}-{run_id}",
            config={**config, "links": links},
        )
        if wandb_logger is not None:
            loggers.append(wandb_logger)

    callbacks = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            save_last=True,
            save_top_k=0,
            every_n_train_steps=cfg.train.checkpoint_every_n_steps * steps_per_iteration,
        ),
        SampleGridCallback(
            every_n_steps=cfg.train.sample_every_n_steps,
            num_images=cfg.train.num_sample_images,
            out_dir=run_dir / "samples",
            seed=cfg.seed,
            provenance=provenance,
        ),
        GANHealthMonitor(**cfg.train.health),
        replica_check := ReplicaConsistencyCheck(),
        loop_timer := TrainingLoopTimer(),
        CheckpointOnSigterm(checkpoint_dir / LAST),
        RandomStateInCheckpoint(),
        DistinctRandomnessPerRank(),
        # Redrawing every step cost 10% of DCGAN's CPU throughput (benchmarks/throughput.py).
        RichProgressBar(refresh_rate=PROGRESS_REFRESH_STEPS),
    ]
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=loggers,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )
    batch_sizes = {
        "world_size": trainer.world_size,
        "batch_size_per_device": cfg.data.batch_size,
        "batch_size_global": cfg.data.batch_size * trainer.world_size,
    }
    for logger in loggers:
        logger.log_hyperparams(batch_sizes)  # W&B config and csv/hparams.yaml
    succeeded = False
    try:
        started = time.perf_counter()
        resume_from = str(checkpoint_dir / LAST) if resume else None
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        except SIGTERMException:
            raise TrainingInterrupted(
                f"stopped by SIGTERM at training step {module.training_steps}; saved "
                f"{checkpoint_dir / LAST}. Run the same command (or `dvc repro`) again to resume."
            ) from None
        elapsed = time.perf_counter() - started
        loop_seconds = loop_timer.seconds or elapsed
        steps_done = module.training_steps
        trained_here = steps_done - module.start_step
        images_seen_here = trainer.world_size * cfg.data.batch_size * trained_here
        summary = {
            "run_id": run_id,
            "model": cfg.model.name,
            "steps": steps_done,
            "resumed": resume,
            "resumed_from_step": module.start_step,
            "wall_time_s": round(elapsed, 2),
            "training_loop_s": round(loop_seconds, 2),
            # Images per second of the training loop (setup excluded), all ranks together.
            "images_per_s": round(images_seen_here / loop_seconds, 1) if loop_seconds > 0 else None,
            **batch_sizes,
            "cpu_threads": threads,
            "replica_max_abs_diff": replica_check.max_abs_diff,
            "links": links,
            "final": {k: float(v) for k, v in trainer.callback_metrics.items()},
        }
        if trainer.is_global_zero and cfg.train.objective.metric is not None:
            summary["objective"] = quick_objective(module.sampling_generator(), cfg)
            for logger in loggers:
                logger.log_metrics(
                    {f"objective/{cfg.train.objective.metric}": summary["objective"]["value"]},
                    step=steps_done,
                )
        if trainer.is_global_zero:
            record = {**provenance, "config": config, "data_meta": data_meta, "train": summary}
            save_generator(
                run_dir / GENERATOR_FILE,
                module.sampling_generator(),
                OmegaConf.to_container(cfg.model[module.sampling_network_key], resolve=True),
                record,
            )
            write_json(run_dir / SUMMARY_FILE, summary)
        for logger in loggers:
            logger.finalize("success")
        succeeded = True
        return summary
    finally:
        # Sweep jobs share one process (basic launcher): each must close its own W&B run, or
        # the next job's logger would silently log into it.
        finish_wandb_runs(loggers, succeeded)
