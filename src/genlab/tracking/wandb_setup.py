"""W&B through Lightning's WandbLogger, degrading to offline instead of failing the run.

``wandb.init`` raises when it cannot reach the server instead of falling back by itself, so the
mode is decided here: explicit ``WANDB_MODE`` wins; ``logger.mode=auto`` goes online only with
credentials and a server that answers, otherwise offline, and says once how to sync later.

W&B keeps what it is given for good, so it gets no URL secrets: the config is redacted, and so
is the command line it records as the run's ``args`` (a ``data.source.url=...`` override may
carry a token).

Logging never ends a run, at its start or later: when W&B's service process dies mid-run (SLURM's
pre-emption signals every process of a job, wandb-core included), W&B logging stops with one
warning and training goes on to its SIGTERM checkpoint (:class:`WandbLoggerSurvivingItsService`).
"""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import WandbLogger

from genlab.config.hydra_runtime import sweep_name
from genlab.config.redaction import redact_config, redact_text
from genlab.layout import RunLayout
from genlab.tracking.identity import RunContext, dvc_experiment
from genlab.urls import web_link

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)


@dataclass
class ModelArtifact:
    """Exported model files for W&B's model registry: name, files, and what they are."""

    name: str
    files: Sequence[Path]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class WandbLoggerSurvivingItsService(WandbLogger):
    """Lightning's WandbLogger, except that losing W&B's service process stops W&B logging with
    one warning instead of failing the training step that was logging.

    The Python side talks to wandb-core over a local socket, so a ``ConnectionError`` there
    means that process is gone, not the network (wandb-core owns retries online). SLURM signals
    every process of a job on pre-emption (``scontrol requeue``, ``scancel``), and wandb-core
    exits at once: the next metric or sample grid would raise ``ConnectionResetError`` mid-batch,
    before Lightning reaches the SIGTERM checkpoint the requeued job resumes from. Everything
    still reaches the CSV log; the requeued job logs to the same W&B run id again.
    """

    service_lost: str | None = None  # why W&B logging stopped, once it has

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        self._unless_service_lost(super().log_metrics, *args, **kwargs)

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        self._unless_service_lost(super().log_hyperparams, *args, **kwargs)

    def after_save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self._unless_service_lost(super().after_save_checkpoint, *args, **kwargs)

    def finalize(self, *args: Any, **kwargs: Any) -> None:
        self._unless_service_lost(super().finalize, *args, **kwargs)

    def _unless_service_lost(self, call: Any, *args: Any, **kwargs: Any) -> None:
        if self.service_lost:
            return
        try:
            call(*args, **kwargs)
        except ConnectionError as error:
            self.service_lost = f"{type(error).__name__}: {error}"
            log.warning(
                "W&B's service process is gone (%s): W&B logging stops here and training goes "
                "on; every metric is still in the CSV log. A pre-empted SLURM job loses it to "
                "the same signal; the resumed run logs to the same W&B run.",
                self.service_lost,
            )


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(_base_url()).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def server_reachable(timeout: float) -> bool:
    parsed = urlparse(_base_url())
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_mode(mode: str, init_timeout: float) -> tuple[str, str]:
    """Return (mode, reason): the W&B mode this run will use and why."""
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode:
        return env_mode, "WANDB_MODE is set"
    if mode != "auto":
        return mode, f"logger.mode={mode}"
    if not has_credentials():
        return "offline", "no W&B credentials (WANDB_API_KEY or `wandb login`)"
    if not server_reachable(min(init_timeout, 5.0)):
        return "offline", f"W&B server {_base_url()} is unreachable"
    return "online", "credentials found and server reachable"


def prepare_environment(run_dir: str | os.PathLike) -> Path:
    """Keep W&B files in ``<run_dir>/wandb`` instead of ~/.cache and ~/.config.

    Returns the folder to pass as W&B's ``dir``; the SDK adds the ``wandb/`` level itself.
    """
    run_dir = Path(run_dir).resolve()
    wandb_dir = RunLayout.at(run_dir).wandb
    wandb_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_CACHE_DIR", str(wandb_dir / ".cache"))
    os.environ.setdefault("WANDB_CONFIG_DIR", str(wandb_dir / ".config"))
    os.environ.setdefault("WANDB_SILENT", "true")
    return run_dir


@contextlib.contextmanager
def command_line_redacted() -> Iterator[None]:
    """While W&B starts a run: ``sys.argv`` with its URLs redacted.

    ``wandb.init`` records ``sys.argv[1:]`` as the run's ``args`` (uploaded as
    wandb-metadata.json); the rest of that metadata (program, git commit, host, Python) stays
    useful, so only the arguments are redacted instead of turning the metadata off. The
    process's own ``sys.argv`` is restored afterwards.
    """
    original = sys.argv
    sys.argv = [*original[:1], *(redact_text(argument) for argument in original[1:])]
    try:
        yield
    finally:
        sys.argv = original


def run_tags(logger_cfg: Any, config: dict[str, Any]) -> list[str]:
    """The configured tags plus data and model, so dashboards filter without manual setup."""
    automatic = [
        f"{key}:{config[key]['name']}"
        for key in ("data", "model")
        if isinstance(config.get(key), dict) and "name" in config[key]
    ]
    experiment = dvc_experiment()
    if experiment:
        automatic.append(f"dvc_exp:{experiment}")
    return list(dict.fromkeys([*logger_cfg.tags, *automatic]))


def make_wandb_logger(
    logger_cfg: Any,
    run_dir: str | os.PathLike,
    run_id: str,
    run_name: str,
    config: dict[str, Any],
    job_type: str = "train",
    group: str | None = None,
):
    """A started WandbLogger, or None when W&B is disabled. Online failures fall back offline.
    The W&B group: logger.group when set, else the sweep's name, else ``group``."""
    from pytorch_lightning.utilities import rank_zero_only

    mode, reason = resolve_mode(logger_cfg.mode, logger_cfg.init_timeout)
    if mode == "disabled":
        return None
    if rank_zero_only.rank != 0:  # DDP: rank 0 holds the one W&B run (ranks from SLURM too)
        return None
    config = redact_config(config)  # W&B keeps its config for good: no URL secrets in it
    save_dir = prepare_environment(run_dir)

    def start(chosen_mode: str) -> WandbLogger:
        import wandb

        wandb_logger = WandbLoggerSurvivingItsService(
            project=logger_cfg.project,
            entity=logger_cfg.entity,
            group=logger_cfg.group or sweep_name() or group,  # a sweep's runs share its name
            tags=run_tags(logger_cfg, config),
            name=run_name,
            id=run_id,
            resume="allow",
            save_dir=str(save_dir),
            job_type=job_type,
            mode=chosen_mode,
            settings=wandb.Settings(init_timeout=float(logger_cfg.init_timeout)),
        )
        # Lightning always passes anonymous=None, which wandb>=0.2x answers with a deprecation
        # warning on every run; dropping the key keeps the console to genlab's one W&B line.
        wandb_logger._wandb_init.pop("anonymous", None)
        with command_line_redacted():  # the first use of .experiment starts the W&B run
            experiment = wandb_logger.experiment
        experiment.config.update(config, allow_val_change=True)
        return wandb_logger

    try:
        wandb_logger = start(mode)
    except Exception as error:  # the run must never fail because logging did
        if mode == "offline":
            log.warning("W&B could not start even offline (%s); continuing without it.", error)
            return None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        mode, reason = "offline", f"online start failed: {first_line}"
        _reset_wandb_service()
        try:
            wandb_logger = start("offline")
        except Exception as offline_error:
            log.warning("W&B offline start failed too (%s); continuing without it.", offline_error)
            return None
    if mode == "offline":  # the one line a user needs: why offline, and how to upload later
        run_path = Path(wandb_logger.experiment.dir).parent
        log.warning(
            "W&B: logging offline (%s); upload later with `wandb sync %s`", reason, run_path
        )
    return wandb_logger


def wandb_logger_for_run(context: RunContext):
    """The training run's WandbLogger (conf/logger/wandb.yaml): the run id is the W&B id, the
    config and the run's links go into the W&B config. None when W&B is disabled."""
    return make_wandb_logger(
        context.cfg.logger,
        context.run_dir,
        run_id=context.run_id,
        run_name=f"{context.cfg.paths.run_name}-{context.run_id}",
        config={**context.config, "links": context.links},
        group=context.cfg.model.name,  # one model's seeds side by side in W&B
    )


def wandb_run_url(loggers: list[Any]) -> str | None:
    """The W&B page of the run these loggers logged to, when it was online (an offline run has
    none until `wandb sync`): the report links each run's id to it."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            run = logger.experiment
            if not getattr(run, "offline", True):
                return web_link(getattr(run, "url", None))
    return None


def finish_wandb_runs(loggers: list[Any], succeeded: bool) -> None:
    """Close the W&B runs these loggers started (exit code 1 for a failed job)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            if getattr(logger, "service_lost", None):
                _forget_lost_service(logger)
                continue
            try:
                logger.experiment.finish(exit_code=0 if succeeded else 1)
            except Exception as error:  # closing a log must never fail the run
                log.warning("W&B run did not close cleanly: %s", error)


def _forget_lost_service(logger: WandbLogger) -> None:
    """A run whose service died cannot be closed; drop W&B's connection to it instead, so the
    process exits without W&B's own exit hook failing on it with a traceback."""
    import wandb

    run_dir = Path(logger.experiment.dir).parent
    log.warning(
        "W&B run %s was not closed (its service process had stopped); what it wrote is in %s",
        logger.experiment.id,
        run_dir,
    )
    try:
        wandb.teardown()
    except ConnectionError as error:  # the connection is the one known to be gone
        log.debug("wandb.teardown after losing the service: %s", error)


def _reset_wandb_service() -> None:
    """Forget a failed online run; otherwise its id stays "in use" for the offline retry."""
    import wandb

    try:
        wandb.teardown()
    except Exception as error:  # pragma: no cover - best effort
        log.debug("wandb.teardown failed: %s", error)


def log_to_existing_run(
    logger_cfg: Any,
    run_dir: str | os.PathLike,
    run_id: str,
    values: dict[str, Any],
    job_type: str,
    model_artifact: ModelArtifact | None = None,
) -> None:
    """Add a later stage's results to the training's W&B run (same id); never raises.

    ``model_artifact``: exported files logged as a W&B artifact of type ``model``.
    """
    if logger_cfg.backend != "wandb":
        return
    mode, _ = resolve_mode(logger_cfg.mode, logger_cfg.init_timeout)
    if mode == "disabled":
        return
    save_dir = prepare_environment(run_dir)
    try:
        import wandb

        with command_line_redacted():
            run = wandb.init(
                project=logger_cfg.project,
                entity=logger_cfg.entity,
                id=run_id,
                resume="allow",
                dir=str(save_dir),
                job_type=job_type,
                mode=mode,
                settings=wandb.Settings(init_timeout=float(logger_cfg.init_timeout)),
            )
        # Summary, not history: a resumed run's step counter would put these out of order.
        run.summary.update(values)
        if model_artifact is not None:
            artifact = wandb.Artifact(
                model_artifact.name,
                type="model",
                description=model_artifact.description,
                metadata=model_artifact.metadata,
            )
            for path in model_artifact.files:
                artifact.add_file(str(path))
            run.log_artifact(artifact, aliases=["latest", f"run-{run_id}"])
        run.finish()
    except Exception as error:
        log.warning("Could not log %s results to W&B run %s: %s", job_type, run_id, error)
