"""A resumable Optuna search: the study lives in the sweep folder, and the same command resumes it.

hydra-optuna-sweeper 1.3 keeps its study in memory unless told a storage, and a re-run always
asks for ``n_trials`` new trials. Before its ``sweep`` runs, :func:`resume_study` (installed by
:func:`install_resumable_optuna`, in the sweeping process) does the bookkeeping that makes a
second run of the same command continue the first:

- the study is stored in SQLite in the sweep folder (``optuna.db``) unless a storage is given;
- a study made with another search space, other fixed overrides or another direction is
  refused (one line naming the folder and how to start another);
- a trial left RUNNING by a killed process is launched again with its own parameters and its
  own job number (= trial number: same folder, so it resumes from its ``last.ckpt``) and told
  to the study;
- the original ``sweep`` then asks only for the trials still missing (``n_trials`` minus the
  finished ones), numbered on from the study's last trial.

Hydra loads sweepers only from its hydra_plugins package, so the method is wrapped in place
instead of subclassed (as genlab.tracking.sweep does for the SLURM launcher).
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError
from genlab.layout import OPTUNA_STUDY_FILE

log = logging.getLogger("genlab")

SEARCH_ATTR = "genlab_search"  # the study user attr recording what the search was started with


def install_resumable_optuna() -> None:
    """Make OptunaSweeperImpl.sweep resume its study first (idempotent)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

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


def search_overrides(sweeper: Any, arguments: list[str]) -> list[str]:
    """The search space and fixed overrides: ``hydra.sweeper.params`` plus the command line's
    overrides, in the order the sweeper reads them."""
    params = sweeper.params or sweeper.search_space or {}
    return [f"{key}={value}" for key, value in params.items()] + list(arguments)


def search_settings(sweeper: Any, arguments: list[str]) -> dict[str, Any]:
    """What a resumed study must have been started with: its overrides (in any order) and
    directions."""
    overrides = sorted(search_overrides(sweeper, arguments))
    return {"overrides": overrides, "directions": list(sweeper._get_directions())}


def resume_study(sweeper: Any, arguments: list[str]) -> None:
    """Open (or start) the study in the sweep folder, finish its interrupted trials, and set
    the sweeper to ask for the missing ones only, numbered as its jobs."""
    import optuna

    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if sweeper.storage is None:
        sweeper.storage = f"sqlite:///{sweep_dir / OPTUNA_STUDY_FILE}"
    settings = search_settings(sweeper, arguments)
    directions = settings["directions"]
    study = optuna.create_study(
        study_name=sweeper.study_name,
        storage=sweeper.storage,
        directions=directions,
        load_if_exists=True,
    )
    _check_same_search(study, settings, sweep_dir)
    names = _parameter_names(search_overrides(sweeper, arguments))
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        _rerun_interrupted(sweeper, study, trial, len(directions), names)
    done_states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.PRUNED,
    )
    finished = len(study.get_trials(deepcopy=False, states=done_states))
    if finished:
        log.info(
            "study %s in %s: %d of %d trials already finished; running %d more",
            study.study_name,
            sweeper.storage,
            finished,
            sweeper.n_trials,
            max(0, sweeper.n_trials - finished),
        )
    sweeper.n_trials = max(0, sweeper.n_trials - finished)
    sweeper.job_idx = len(study.trials)  # job number == trial number for the new trials


def _check_same_search(study: Any, settings: dict[str, Any], sweep_dir: Path) -> None:
    stored = study.user_attrs.get(SEARCH_ATTR)
    if stored is None:
        study.set_user_attr(SEARCH_ATTR, settings)
        return
    if stored == settings:
        return
    before, now = set(stored["overrides"]), set(settings["overrides"])
    changes = [f"stored {sorted(before - now)}, now {sorted(now - before)}"]
    if stored["directions"] != settings["directions"]:
        changes.append(f"direction stored {stored['directions']}, now {settings['directions']}")
    raise ConfigError(
        f"{sweep_dir} holds Optuna study '{study.study_name}' of another search "
        f"({'; '.join(changes)}): run the same command to resume it, or start another search "
        f"with hydra.sweep.dir=<new folder> or hydra.sweeper.study_name=<new name>"
    )


def _parameter_names(overrides: list[str]) -> list[str]:
    """The names each trial sets, searched then fixed (as the sweeper parses and orders them)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    distributions, fixed = create_params_from_overrides(overrides)
    return [*distributions, *(name for name in fixed if name not in distributions)]


def _rerun_interrupted(
    sweeper: Any, study: Any, trial: Any, n_directions: int, names: list[str]
) -> None:
    """Launch a trial left RUNNING again, as job ``trial.number`` (its own folder and
    checkpoints), and tell the study how it ended. A trial killed before it had all its
    parameters never started training: it is told as FAIL."""
    import optuna

    values = {**trial.user_attrs, **trial.params}
    if not set(names) <= set(values):
        log.warning("trial %d was interrupted before it was launched; FAIL", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return
    overrides = tuple(f"{name}={values[name]}" for name in names)
    log.info(
        "trial %d was interrupted; running it again as job %d: %s",
        trial.number,
        trial.number,
        " ".join(overrides),
    )
    (returned,) = sweeper.launcher.launch([overrides], initial_job_idx=trial.number)
    try:
        value = returned.return_value
        values = [float(value)] if n_directions == 1 else [float(v) for v in value]
        state = optuna.trial.TrialState.COMPLETE
    except Exception as error:  # the sweeper's own rule: no float back = a FAIL trial
        log.warning("Failed experiment: %s", error)
        values, state = None, optuna.trial.TrialState.FAIL
    study.tell(trial.number, values=values, state=state)
