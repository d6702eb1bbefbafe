"""A resumable Optuna search: the study lives in the sweep folder, and the same command resumes it.

hydra-optuna-sweeper 1.3 keeps its study in memory unless told a storage, and a re-run always
asks for ``n_trials`` new trials. Before its ``sweep`` runs, :func:`resume_study` (installed by
:func:`install_resumable_optuna`, in the sweeping process) does the bookkeeping that makes a
second run of the same command continue the first:

- the study is stored in SQLite in the sweep folder (``optuna.db``) unless a storage is given;
- a study made with another search space, other fixed overrides or another direction is
  refused (one line naming the folder and how to start another), and so is the deprecated
  ``hydra.sweeper.search_space`` (its entries belong in ``hydra.sweeper.params``);
- a search still running (a trial's job record names a live process on this host) is refused:
  two processes must never train into one trial folder;
- a trial left RUNNING by a killed process is launched again with its own parameters and its
  own job number (= trial number: same folder, so it resumes from its ``last.ckpt``), batched
  by ``n_jobs`` as the sweeper batches, and told to the study. With an explicit storage
  (several workers may share it) only a trial whose job record proves its process dead is
  launched again; the others are left to whoever runs them;
- a trial killed before its parameters were set never trained: it is told FAIL, marked
  (system attr ``genlab_never_launched``, its grid point left free) and not counted;
- the original ``sweep`` then asks only for the trials still missing: ``n_trials`` (at most the
  grid's size with the grid sampler) minus the finished ones, numbered on from the study's last
  trial.

Optuna 2.10's GridSampler calls ``study.stop()`` once its last grid point is told, which raises
outside ``optimize``; Hydra 1.3 tolerates that only for a COMPLETE trial, so a FAIL on the last
point crashed the whole sweep. :func:`install_resumable_optuna` makes the sampler skip that stop
(Hydra's trial count ends the loop anyway).

Hydra loads sweepers only from its hydra_plugins package, so the methods are wrapped in place
instead of subclassed (as genlab.tracking.sweep does for the SLURM launcher).
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError
from genlab.layout import JOB_STATUS_FILE, OPTUNA_STUDY_FILE
from genlab.tracking.job_records import (
    overrides_digest,
    read_record,
    record_interrupted,
    running_elsewhere,
)

log = logging.getLogger("genlab")

SEARCH_ATTR = "genlab_search"  # the study user attr recording what the search was started with
# A trial's system attr: killed before its parameters were set, told FAIL, never counted.
NEVER_LAUNCHED_ATTR = "genlab_never_launched"
# What optuna 2.10's Study.stop raises outside optimize() (GridSampler.after_trial calls it).
STOP_OUTSIDE_OPTIMIZE = "`Study.stop` is supposed to be invoked inside an objective function"


def install_resumable_optuna() -> None:
    """Make OptunaSweeperImpl.sweep resume its study first, and GridSampler survive the end of
    its grid outside ``optimize`` (idempotent)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

    _install_grid_stop_guard()
    original = getattr(OptunaSweeperImpl.sweep, "__wrapped__", OptunaSweeperImpl.sweep)

    @functools.wraps(original)
    def sweep(sweeper: Any, arguments: list[str]) -> None:
        try:
            resume_study(sweeper, arguments)
        except ConfigError as refused:  # one line, not Hydra's traceback
            print(f"genlab: {refused.user_message()}", file=sys.stderr)
            sys.exit(refused.exit_code)
        return original(sweeper, arguments)

    OptunaSweeperImpl.sweep = sweep


def _install_grid_stop_guard() -> None:
    """GridSampler.after_trial without the RuntimeError of its ``study.stop()`` outside
    ``optimize`` (Hydra's sweep and :func:`resume_study` tell trials themselves)."""
    from optuna.samplers import GridSampler

    original = getattr(GridSampler.after_trial, "__wrapped__", GridSampler.after_trial)

    @functools.wraps(original)
    def after_trial(sampler: Any, study: Any, trial: Any, state: Any, values: Any) -> None:
        try:
            original(sampler, study, trial, state, values)
        except RuntimeError as error:
            if STOP_OUTSIDE_OPTIMIZE not in str(error):
                raise
            log.debug("grid exhausted at trial %d (study.stop skipped)", trial.number)

    GridSampler.after_trial = after_trial


@dataclass(frozen=True)
class SearchSpace:
    """What each trial sets, as the sweeper parses it: searched names (without the fixed ones)
    and fixed overrides."""

    distributions: dict[str, Any]
    fixed: dict[str, Any]


def search_overrides(sweeper: Any, arguments: list[str]) -> list[str]:
    """The search space and fixed overrides: ``hydra.sweeper.params`` plus the command line's
    overrides, in the order the sweeper reads them."""
    if sweeper.params is None and sweeper.search_space:
        raise ConfigError(
            "hydra.sweeper.search_space is deprecated and cannot be resumed: move its entries to "
            "hydra.sweeper.params as override strings (e.g. "
            "model.optim.lr: tag(log, interval(1e-5, 1e-2)))"
        )
    params = sweeper.params or {}
    return [f"{key}={value}" for key, value in params.items()] + list(arguments)


def search_settings(sweeper: Any, arguments: list[str]) -> dict[str, Any]:
    """What a resumed study must have been started with: its overrides (in any order) and
    directions."""
    overrides = sorted(search_overrides(sweeper, arguments))
    return {"overrides": overrides, "directions": list(sweeper._get_directions())}


def search_space(sweeper: Any, arguments: list[str]) -> SearchSpace:
    """The searched distributions and fixed values, as the sweeper's ``sweep`` computes them."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    distributions, fixed = create_params_from_overrides(search_overrides(sweeper, arguments))
    searched = {name: value for name, value in distributions.items() if name not in fixed}
    return SearchSpace(distributions=searched, fixed=dict(fixed))


def grid_size(sweeper: Any, space: SearchSpace) -> int | None:
    """The number of grid points when the sampler is Optuna's GridSampler (None otherwise):
    the most trials the search can have in all."""
    import optuna

    sampler = sweeper.sampler
    if not (isinstance(sampler, functools.partial) and sampler.func == optuna.samplers.GridSampler):
        return None
    size = 1
    for name, distribution in space.distributions.items():
        try:
            size *= len(sweeper._to_grid_sampler_choices(distribution))
        except ValueError:
            raise ConfigError(
                f"hydra/sweeper/sampler=grid needs a discrete search space, but {name} is "
                f"{distribution}: give it as choice(...) or range(...)"
            ) from None
    return size


def resume_study(sweeper: Any, arguments: list[str]) -> None:
    """Open (or start) the study in the sweep folder, finish its interrupted trials, and set
    the sweeper to ask for the missing ones only, numbered as its jobs."""
    from optuna.trial import TrialState

    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    explicit_storage = sweeper.storage is not None
    if not explicit_storage:
        sweeper.storage = f"sqlite:///{sweep_dir / OPTUNA_STUDY_FILE}"
    settings = search_settings(sweeper, arguments)
    space = search_space(sweeper, arguments)
    grid = grid_size(sweeper, space)
    study = _open_study(sweeper, settings, sweep_dir)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    records = {
        trial.number: read_record(sweep_dir / str(trial.number) / JOB_STATUS_FILE)
        for trial in running
    }
    _refuse_live_search(sweep_dir, running, records)
    relaunch = []
    for trial in running:
        overrides = trial_overrides(trial, space)
        if explicit_storage and not _proven_dead(records[trial.number], trial, overrides):
            log.info(
                "trial %d is RUNNING in %s and no job record in %s shows its process dead: "
                "left to the process running it",
                trial.number,
                sweeper.storage,
                sweep_dir / str(trial.number),
            )
        elif overrides is None:
            _fail_never_launched(study, trial)
        else:
            relaunch.append((trial, overrides))
    for batch in _batches(relaunch, max(1, int(sweeper.n_jobs or 1))):
        _rerun_interrupted(sweeper, study, batch, len(settings["directions"]))
    done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    finished = len(
        [
            trial
            for trial in study.get_trials(deepcopy=False, states=done)
            if not trial.system_attrs.get(NEVER_LAUNCHED_ATTR)
        ]
    )
    total = sweeper.n_trials if grid is None else min(sweeper.n_trials, grid)
    if finished:
        log.info(
            "study %s in %s: %d of %d trials already finished; running %d more",
            study.study_name,
            sweeper.storage,
            finished,
            total,
            max(0, total - finished),
        )
    sweeper.n_trials = max(0, total - finished)
    sweeper.job_idx = len(study.trials)  # job number == trial number for the new trials
    if study.trials and hasattr(sweeper.sampler, "reseed_rng"):
        # A seeded sampler (hydra.sweeper.sampler.seed) starts its random stream again in a
        # new process: TPE's first draws would repeat the trials the search already ran.
        sweeper.sampler.reseed_rng()


def trial_overrides(trial: Any, space: SearchSpace) -> tuple[str, ...] | None:
    """A trial's job overrides, built as the sweeper's ``_configure_trials`` builds them (its
    params, custom search space ones included, then the fixed values it recorded); None when
    the trial was killed before all of them were set (it never launched)."""
    if (
        not set(space.distributions) <= trial.params.keys()
        or not set(space.fixed) <= trial.user_attrs.keys()
    ):
        return None
    # the sweeper's order: its searched names, the custom search space's, then the fixed ones
    params = {name: trial.params[name] for name in space.distributions}
    params.update(trial.params)
    params.update({name: trial.user_attrs[name] for name in space.fixed})
    return tuple(f"{name}={value}" for name, value in params.items())


def _refuse_live_search(
    sweep_dir: Path, running: list[Any], records: dict[int, dict[str, Any] | None]
) -> None:
    """Refuse when a RUNNING trial's job is alive on this host: another process still runs
    this search (a second command into the same folder, or another worker)."""
    for trial in running:
        record = records[trial.number]
        if record is not None and running_elsewhere(record):
            raise ConfigError(
                f"{sweep_dir} is still being searched: trial {trial.number} runs in pid "
                f"{record['pid']} on {record['host']}; wait for it or stop it first"
            )


def _proven_dead(
    record: dict[str, Any] | None, trial: Any, overrides: tuple[str, ...] | None
) -> bool:
    """Does the trial's own job record (its job number and overrides) name a dead process?"""
    return (
        record is not None
        and overrides is not None
        and record.get("job") == trial.number
        and record.get("overrides_sha256") == overrides_digest(list(overrides))
        and record_interrupted(record)
    )


def _fail_never_launched(study: Any, trial: Any) -> None:
    """Tell a trial killed before its parameters were set as FAIL, marked so that it is not
    counted, and with its grid point (GridSampler) left free for another trial."""
    import optuna

    log.warning("trial %d was interrupted before it was launched; FAIL, not counted", trial.number)
    study._storage.set_trial_system_attr(trial._trial_id, NEVER_LAUNCHED_ATTR, True)
    if "grid_id" in trial.system_attrs:  # GridSampler ignores a trial of another search space
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", {})
    study.tell(trial.number, values=None, state=optuna.trial.TrialState.FAIL)


def _batches(
    trials: list[tuple[Any, tuple[str, ...]]], size: int
) -> Iterator[list[tuple[Any, tuple[str, ...]]]]:
    """Trials to launch again, at most ``size`` together, each batch of consecutive numbers (a
    launcher numbers a batch's jobs on from its first)."""
    batch: list[tuple[Any, tuple[str, ...]]] = []
    for item in sorted(trials, key=lambda item: item[0].number):
        if batch and (len(batch) == size or item[0].number != batch[-1][0].number + 1):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _rerun_interrupted(
    sweeper: Any, study: Any, batch: list[tuple[Any, tuple[str, ...]]], n_directions: int
) -> None:
    """Launch interrupted trials again, each as job ``trial.number`` (its own folder and
    checkpoints), and tell the study how each ended (the sweeper's rule: no float back, or the
    wrong number of them, is a FAIL trial)."""
    import optuna

    for trial, overrides in batch:
        log.info(
            "trial %d was interrupted; running it again as job %d: %s",
            trial.number,
            trial.number,
            " ".join(overrides),
        )
    returns = sweeper.launcher.launch(
        [overrides for _, overrides in batch], initial_job_idx=batch[0][0].number
    )
    for (trial, _), returned in zip(batch, returns, strict=True):
        try:
            value = returned.return_value
            values = [float(value)] if n_directions == 1 else [float(v) for v in value]
            if len(values) != n_directions or not all(math.isfinite(v) for v in values):
                raise ValueError(f"expected {n_directions} finite value(s), got {value!r}")
            study.tell(trial.number, values=values, state=optuna.trial.TrialState.COMPLETE)
        except Exception as error:
            log.warning("Failed experiment: %s", error)
            study.tell(trial.number, values=None, state=optuna.trial.TrialState.FAIL)


def _open_study(sweeper: Any, settings: dict[str, Any], sweep_dir: Path) -> Any:
    """The sweeper's study, checked to be the same search (before optuna.create_study, which
    fails with a traceback on another direction), or a new one recording its settings."""
    import optuna

    if sweeper.study_name is not None:
        try:
            study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
        except KeyError:  # no such study yet
            pass
        else:
            _check_same_search(study, settings, sweep_dir)
            return study
    study = optuna.create_study(
        study_name=sweeper.study_name,
        storage=sweeper.storage,
        directions=settings["directions"],
        load_if_exists=True,
    )
    _check_same_search(study, settings, sweep_dir)
    return study


def _check_same_search(study: Any, settings: dict[str, Any], sweep_dir: Path) -> None:
    """Refuse a study started with other overrides or directions (one line, with the way out);
    record the settings in a study that has none yet."""
    directions = [direction.name.lower() for direction in study.directions]
    stored = study.user_attrs.get(SEARCH_ATTR)
    if stored is None and directions == [d.lower() for d in settings["directions"]]:
        study.set_user_attr(SEARCH_ATTR, settings)
        return
    stored = stored or {"overrides": settings["overrides"], "directions": directions}
    if stored == settings:
        return
    before, now = set(stored["overrides"]), set(settings["overrides"])
    changes = []
    if before != now:
        changes.append(f"stored {sorted(before - now)}, now {sorted(now - before)}")
    if stored["directions"] != settings["directions"]:
        changes.append(f"direction stored {stored['directions']}, now {settings['directions']}")
    raise ConfigError(
        f"{sweep_dir} holds Optuna study '{study.study_name}' of another search "
        f"({'; '.join(changes)}): run the same command to resume it, or start another search "
        f"with hydra.sweep.dir=<new folder> or hydra.sweeper.study_name=<new name>"
    )
