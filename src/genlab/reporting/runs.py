"""Every run genlab knows in a workspace, as one table: ``genlab runs`` and its page.

A row comes from one of four origins: a ``dvc repro`` run (one model trained from one seed:
``runs/<run name>`` with ``metrics/<run name>.json``), a DVC experiment (``dvc exp show``), a
multirun job (a sweep folder's ``<job>/genlab_job.json`` with ``<job>/run/train_summary.json``)
or an Optuna trial (the same, in a sweep folder that holds ``optuna.db``). Nothing here trains
or scores: it reads records.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from genlab.checks import as_mapping, finite_number, is_number, printable
from genlab.config.redaction import redact_text
from genlab.errors import StageInputError
from genlab.io import read_json_object
from genlab.layout import (
    CHECKPOINTS_DIR,
    HYDRA_DIR,
    HYDRA_OVERRIDES_FILE,
    JOB_STATUS_FILE,
    LAST_CHECKPOINT,
    METRICS_DIR,
    MULTIRUN_DIR,
    MULTIRUN_YAML,
    OPTUNA_STUDY_FILE,
    RUN_LINKS_FILE,
    RUN_NAME,
    RUNS_DIR,
    SWEEP_JOB_RUN_DIR,
    TRAIN_SUMMARY_FILE,
    WANDB_DIR,
    RunLayout,
    metrics_file,
)
from genlab.metric_keys import FIDELITY_SCORES, HIGHER_IS_BETTER, REPORTED_SCORES, flat_scores
from genlab.reporting.leaderboard import SCORE_COLUMNS
from genlab.tracking.job_records import JOB_FAILED, JOB_OK, JOB_RUNNING, process_alive

# -- where a row comes from ------------------------------------------------------------------
ORIGIN_REPRO = "dvc repro"
ORIGIN_EXPERIMENT = "dvc exp"
ORIGIN_MULTIRUN = "multirun"
ORIGIN_OPTUNA = "optuna"
ORIGINS = (ORIGIN_REPRO, ORIGIN_EXPERIMENT, ORIGIN_MULTIRUN, ORIGIN_OPTUNA)

# -- a row's status --------------------------------------------------------------------------
FINISHED = "finished"
FAILED = "failed"
RUNNING = "running"  # its process is alive (on this host), or on another host and not known dead
INTERRUPTED = "interrupted"  # started, never recorded an end, its process is gone: resumable
STATUSES = (FINISHED, FAILED, RUNNING, INTERRUPTED)


@dataclass(frozen=True)
class RunRow:
    """One run, whatever made it. ``scores`` holds the metric keys of genlab.metric_keys that
    the run has (kid_mean, fid, isc_mean, ...; a sweep job only its objective's); ``params`` the
    swept hyperparameters of a sweep job (dotted key -> value), which the page plots against
    ``objective``."""

    origin: str  # one of ORIGINS
    name: str  # run name (dvc repro: <model>-seed<seed>), experiment name, or "<sweep>#<job>"
    status: str  # one of STATUSES
    model: str | None = None
    reason: str | None = None  # why it failed / was interrupted (one line, redacted)
    overrides: tuple[str, ...] = ()  # what differs from the defaults, as Hydra overrides
    scores: dict[str, float] = field(default_factory=dict)
    objective_metric: str | None = None  # a sweep's objective (train.objective.metric)
    objective: float | None = None
    steps: int | None = None
    images_per_s: float | None = None
    run_id: str | None = None
    wandb_dir: str | None = None  # the run's W&B folder (offline runs: wandb sync it)
    wandb_url: str | None = None  # when synced
    folder: str | None = None  # the run folder, relative to the workspace when inside it
    sweep: str | None = None  # the sweep folder (multirun / optuna rows), relative
    job: int | None = None  # the job number in its sweep (Optuna: the trial number)
    params: dict[str, Any] = field(default_factory=dict)
    best: bool = False  # the best finished run of its sweep by the objective

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["overrides"] = list(self.overrides)
        return row


# -- reading the records ----------------------------------------------------------------------
# The workspace's folders (runs/, metrics/, multirun/) and Hydra's record of a job's overrides
# are named in genlab.layout.
# the score columns of the terminal table: (key in RunRow.scores, header), headed as on the
# leaderboard (which owns the headers)
TABLE_SCORES = tuple((key, header) for key, header in SCORE_COLUMNS if key in FIDELITY_SCORES)
_MAX_RECORD_BYTES = 4 << 20  # a record larger than this is not genlab's: refused unread
_MAX_SWEEP_DEPTH = 4  # multirun/search/<name>/...: how deep sweep folders are looked for
_NAME_LIMIT = 120
_TEXT_LIMIT = 300
# a metrics column of `dvc exp show` (``metrics/<run name>.json:kid_mean``) names its run
_METRICS_FILE = re.compile(rf"^(?:.*/)?{METRICS_DIR}/([^/]+)\.json$")
_SUMMARY_FILE = re.compile(rf"^(?:.*/)?{RUNS_DIR}/([^/]+)/{re.escape(TRAIN_SUMMARY_FILE)}$")
# a run name (layout.RUN_NAME, <model>-seed<seed>) read back: its model and seed
_RUN_NAME = re.compile(
    "^"
    + re.escape(RUN_NAME)
    .replace(re.escape("{model}"), "(?P<model>.+)")
    .replace(re.escape("{seed}"), "(?P<seed>[0-9]+)")
    + "$"
)

Warn = Callable[[str], None]


def _text(value: Any, limit: int = _TEXT_LIMIT) -> str:
    """A string from someone else's file, safe for one line of a terminal, URLs redacted (the
    whole value first, then cut short: a URL cut in half could no longer be recognised)."""
    return printable(redact_text(str(value)), limit=limit)


def _count(value: Any) -> int | None:
    number = finite_number(value)
    return int(number) if number is not None and number == int(number) else None


def _read_record(path: Path) -> tuple[dict[str, Any], str | None]:
    """(the JSON object in ``path``, None) or ({}, why it cannot be read): never raises."""
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            return {}, f"{path.name} is refused: larger than {_MAX_RECORD_BYTES} bytes"
        return read_json_object(path, "it is not a record genlab wrote"), None
    except StageInputError as error:
        return {}, _text(f"{path.name}: {error}".replace(str(path), path.name))
    except OSError as error:
        return {}, _text(f"{path.name} is unreadable ({error.strerror or error})")


def _relative(path: Path | str, workspace: Path) -> str:
    """``path`` relative to the workspace when inside it (else as given), printable."""
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = workspace / candidate
    try:
        shown = str(candidate.resolve().relative_to(workspace.resolve()))
    except (ValueError, OSError, RuntimeError):
        shown = str(path)
    return _text(shown, limit=_TEXT_LIMIT)


def _scores(record: Mapping[str, Any]) -> dict[str, float]:
    """The model's own finite scores of a metrics record (metric_keys.REPORTED_SCORES)."""
    flat = flat_scores(dict(record))
    return {
        key: value for key in REPORTED_SCORES if (value := finite_number(flat.get(key))) is not None
    }


def _summary_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a row takes from train_summary.json (steps, images/s, run id, model)."""
    links = as_mapping(summary.get("links"))
    run_id = summary.get("run_id", links.get("run_id"))
    model = summary.get("model")
    return {
        "steps": _count(summary.get("steps")),
        "images_per_s": finite_number(summary.get("images_per_s")),
        "run_id": _text(run_id, _NAME_LIMIT) if isinstance(run_id, str) and run_id else None,
        "model": _text(model, _NAME_LIMIT) if isinstance(model, str) and model else None,
    }


def _wandb_dir(run_dir: Path, run_id: str | None, workspace: Path) -> str | None:
    """The run's W&B folder: ``wandb/<offline->run-<time>-<run id>`` when there is one."""
    folder = run_dir / WANDB_DIR
    if not folder.is_dir():
        return None
    if run_id and re.fullmatch(r"[A-Za-z0-9_-]+", run_id):
        matches = sorted(folder.glob(f"*run-*-{run_id}"))
        if matches:
            return _relative(matches[-1], workspace)
    return _relative(folder, workspace)


def _overrides(values: Any) -> tuple[str, ...]:
    """Hydra overrides from a record: strings only, redacted and printable."""
    if not isinstance(values, list):
        return ()
    return tuple(_text(value) for value in values[:200] if isinstance(value, str))


def _hydra_overrides(output_dir: Path) -> tuple[str, ...] | None:
    """The task overrides Hydra recorded in ``<output dir>/.hydra/overrides.yaml``."""
    path = output_dir / HYDRA_DIR / HYDRA_OVERRIDES_FILE
    try:
        if not path.is_file() or path.stat().st_size > _MAX_RECORD_BYTES:
            return None
        values = yaml.safe_load(path.read_text())
    except (OSError, ValueError, RecursionError, yaml.YAMLError):  # "[[[[...": too deep
        return None
    return _overrides(values) if isinstance(values, list) else None


def _inside(path: Path, workspace: Path) -> bool:
    try:
        path.resolve().relative_to(workspace.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


# -- dvc repro runs: runs/<run name> and metrics/<run name>.json ---------------------------------
def _repro_runs(workspace: Path) -> list[str]:
    """The run names (layout.run_name: <model>-seed<seed>) of a workspace's run folders and
    metrics files."""
    names = set()
    runs = workspace / RUNS_DIR
    if runs.is_dir():
        for folder in runs.iterdir():
            if folder.is_dir() and (
                (folder / TRAIN_SUMMARY_FILE).is_file() or (folder / CHECKPOINTS_DIR).is_dir()
            ):
                names.add(folder.name)
    metrics = workspace / METRICS_DIR
    if metrics.is_dir():
        names.update(path.stem for path in metrics.glob("*.json") if path.is_file())
    return sorted(names)


def _model_and_seed(run: str) -> tuple[str | None, int | None]:
    """The model and seed a run's name says (None, None: not a name layout.run_name gives)."""
    match = _RUN_NAME.match(run)
    return (match["model"], int(match["seed"])) if match else (None, None)


def _run_model(run: str | None) -> str | None:
    """The model a run's name says (the name itself when not a layout.run_name: a run folder
    or metrics file of an earlier version was named after its model)."""
    if not run:
        return None
    return _text(_model_and_seed(run)[0] or run, _NAME_LIMIT)


def _default_overrides(model: str | None, seed: Any) -> tuple[str, ...]:
    """What the pipeline's train command passes for a run (``model=<m> seed=<s>``), as far as
    its records and name say."""
    if model is None:
        return ()
    seed_override = (f"seed={seed}",) if type(seed) is int and 0 <= seed < 2**63 else ()
    return (f"model={_text(model, _NAME_LIMIT)}", *seed_override)


def repro_rows(workspace: Path) -> list[RunRow]:
    """One row per run of ``dvc repro`` (one model trained from one seed: runs/<run name>,
    metrics/<run name>.json), named after its run; its model is the one its records name.
    Overrides: the ones the pipeline's train command passed (Hydra's record of them), else
    ``model=<m> seed=<s>``."""
    rows = []
    for run in _repro_runs(workspace):
        run_dir = workspace / RUNS_DIR / run
        summary_path = RunLayout.at(run_dir).summary
        reasons = []
        fields: dict[str, Any] = {}
        recorded_overrides: tuple[str, ...] | None = None
        if summary_path.is_file():
            status = FINISHED
            summary, why = _read_record(summary_path)
            if why:
                reasons.append(why)
            fields.update({k: v for k, v in _summary_fields(summary).items() if v is not None})
            output_dir = as_mapping(summary.get("links")).get("hydra_output_dir")
            if isinstance(output_dir, str) and output_dir:
                output = Path(output_dir)
                output = output if output.is_absolute() else workspace / output
                if _inside(output, workspace):
                    recorded_overrides = _hydra_overrides(output)
        elif run_dir.is_dir():
            status = INTERRUPTED
            reasons.append(
                f"no {TRAIN_SUMMARY_FILE}: training has not finished (still running, or "
                f"interrupted: `dvc repro` resumes it from its {LAST_CHECKPOINT})"
            )
        else:
            status = FINISHED  # scored, its run folder gone (another machine, cleaned up)
        scores: dict[str, float] = {}
        record: Mapping[str, Any] = {}
        metrics_path = metrics_file(workspace / METRICS_DIR, run)
        if metrics_path.is_file():
            record, why = _read_record(metrics_path)
            if why:
                reasons.append(why)
            scores = _scores(record)
        # no train summary: the metrics record names the model, else the run's name does
        if "model" not in fields:
            fields["model"] = _summary_fields(record)["model"] or _run_model(run)
        seed = record.get("seed", _model_and_seed(run)[1])
        run_id = fields.get("run_id")
        rows.append(
            RunRow(
                origin=ORIGIN_REPRO,
                name=_text(run, _NAME_LIMIT),
                status=status,
                reason="; ".join(reasons) or None,
                overrides=recorded_overrides or _default_overrides(fields["model"], seed),
                scores=scores,
                wandb_dir=_wandb_dir(run_dir, run_id, workspace),
                folder=_relative(run_dir, workspace) if run_dir.is_dir() else None,
                **fields,
            )
        )
    return rows


# -- DVC experiments ------------------------------------------------------------------------------
def _has_experiments(workspace: Path) -> bool:
    """Whether the git repo holds DVC experiment refs (refs/exps), without importing DVC."""
    if not (workspace / ".dvc").is_dir():
        return False
    git = workspace / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        text = git.read_text(errors="replace").strip()
        git = Path(text.removeprefix("gitdir:").strip())
    refs = git / "refs" / "exps"
    if refs.is_dir() and any(path.is_file() for path in refs.rglob("*")):
        return True
    packed = git / "packed-refs"
    try:
        return packed.is_file() and " refs/exps/" in packed.read_text(errors="replace")
    except OSError:
        return False


def _exp_value(value: Any) -> Any:
    """A cell of DVC's experiment table as a plain value ("!" / "-" / None: not recorded)."""
    if value is None:
        return None
    text = str(value)
    if text in ("!", "-", ""):
        return None
    if is_number(value):
        return value
    try:
        return float(text)
    except ValueError:
        return text


def _column(header: str) -> tuple[str | None, str]:
    """(file or None, key): DVC names a column ``file:key`` only where the key is ambiguous."""
    file, sep, key = header.rpartition(":")
    return (file, key) if sep else (None, header)


def experiment_rows(workspace: Path, warn: Warn | None = None) -> list[RunRow]:
    """One row per DVC experiment and model (``dvc exp show``): its scores, steps and run id,
    and as overrides the params that differ from its baseline commit's (what ``-S`` set). A
    repo without experiment refs is answered without importing DVC; a failure to read them is
    one warning."""
    if not _has_experiments(workspace):
        return []
    try:
        from dvc.repo import Repo
        from dvc.repo.experiments.show import tabulate

        with Repo.open(str(workspace)) as repo:
            table, headers = tabulate(repo.experiments.show(), fill_value=None)
        records = table.as_dict()
        return _experiment_rows(records, list(headers["metrics"]), list(headers["params"]))
    except Exception as error:  # noqa: BLE001 - DVC's errors are many; the table goes on
        if warn is not None:
            warn(f"DVC experiments left out: {_text(f'{type(error).__name__}: {error}')}")
        return []


def _experiment_rows(
    records: list[dict[str, Any]], metric_headers: list[str], param_headers: list[str]
) -> list[RunRow]:
    baseline: dict[str, Any] = {}
    rows = []
    for record in records:  # DVC lists each baseline commit, then the experiments made on it
        name = record.get("Experiment")
        state = str(record.get("State") or "")
        if record.get("typ") == "baseline":
            baseline = record
        if record.get("typ") == "baseline" or not name or state == "Queued":
            continue
        overrides = tuple(
            f"{_text(_column(header)[1], _NAME_LIMIT)}={_text(_exp_value(record.get(header)))}"
            for header in param_headers
            if _exp_value(record.get(header)) != _exp_value(baseline.get(header))
        )
        per_model: dict[str | None, dict[str, Any]] = {}
        for header in metric_headers:
            file, key = _column(header)
            match = _METRICS_FILE.match(file or "") or _SUMMARY_FILE.match(file or "")
            per_model.setdefault(match.group(1) if match else None, {})[key] = _exp_value(
                record.get(header)
            )
        unnamed = per_model.pop(None, {})
        if not per_model:  # one model: DVC names its columns by key alone
            model = unnamed.get("model")
            per_model = {model if isinstance(model, str) else None: unnamed}
        status = {"Running": RUNNING, "Failed": FAILED}.get(state, FINISHED)
        for run, values in sorted(per_model.items(), key=lambda item: str(item[0])):
            fields = _summary_fields(values)  # the model its records name, else its run's name
            rows.append(
                RunRow(
                    origin=ORIGIN_EXPERIMENT,
                    name=_text(name, _NAME_LIMIT),
                    status=status,
                    model=fields["model"] or _run_model(run),
                    reason="`dvc exp run` failed: see `dvc exp show`" if status == FAILED else None,
                    overrides=overrides,
                    scores=_scores(values),
                    steps=fields["steps"],
                    images_per_s=fields["images_per_s"],
                    run_id=fields["run_id"],
                )
            )
    return rows


# -- sweeps: multirun/<sweep>/<job>/genlab_job.json (Optuna: + optuna.db) ----------------------
def _is_sweep(folder: Path) -> bool:
    if (folder / MULTIRUN_YAML).is_file():
        return True
    return any(child.is_dir() and (child / JOB_STATUS_FILE).is_file() for child in _dirs(folder))


def _dirs(folder: Path) -> list[Path]:
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return []


def sweep_folders(workspace: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Every sweep folder under multirun/ (search sweeps: multirun/search/<name>) and under
    each ``extra`` folder (a sweep folder itself, or one holding sweeps: a sweep written with
    ``hydra.sweep.dir`` outside multirun/), without walking into the jobs' own folders. A
    folder reached twice is listed once."""
    found: dict[Path, Path] = {}
    pending = [(workspace / MULTIRUN_DIR, 0), *((Path(folder), 0) for folder in extra)]
    while pending:
        folder, depth = pending.pop()
        if _is_sweep(folder):
            found.setdefault(_resolved(folder), folder)
        elif depth < _MAX_SWEEP_DEPTH:
            pending.extend((child, depth + 1) for child in _dirs(folder) if not child.is_symlink())
    return sorted(found.values())


def _resolved(folder: Path) -> Path:
    try:
        return folder.resolve()
    except (OSError, RuntimeError):
        return folder.absolute()


def _job_number(folder: Path) -> int | None:
    """A job folder's number (Hydra names them 0, 1, ...): ASCII digits only ("²" is a digit
    to str.isdigit, not to int)."""
    name = folder.name
    return int(name) if name.isascii() and name.isdigit() else None


def _is_job(folder: Path) -> bool:
    return _job_number(folder) is not None or any(
        (folder / name).exists()
        for name in (JOB_STATUS_FILE, RUN_LINKS_FILE, SWEEP_JOB_RUN_DIR, HYDRA_DIR)
    )


def _job_status(record: Mapping[str, Any], why: str | None, sweep: str) -> tuple[str, str | None]:
    """(row status, reason) of a job from its record (see genlab.tracking.sweep)."""
    resume = f"re-run the sweep command with hydra.sweep.dir={sweep} to resume"
    if why:
        return INTERRUPTED, f"{why}; {resume}"
    if not record:
        return INTERRUPTED, f"no {JOB_STATUS_FILE}: the job never recorded a start; {resume}"
    status = record.get("status")
    if status == JOB_OK:
        return FINISHED, None
    if status == JOB_FAILED:
        error = record.get("error")
        return FAILED, _text(error) if isinstance(
            error, str
        ) and error else "failed (no error recorded)"
    if status == JOB_RUNNING:
        alive = process_alive(record)
        host = record.get("host")
        if alive is None and isinstance(host, str) and host and host != socket.gethostname():
            return RUNNING, f"on host {_text(host, _NAME_LIMIT)} (not checked from here)"
        if alive is None:
            return INTERRUPTED, f"its record names no process; {resume}"
        if alive:
            return RUNNING, None
        return INTERRUPTED, f"process {record['pid']} is gone; {resume}"
    return INTERRUPTED, f"{JOB_STATUS_FILE} has an unknown status {_text(status, 40)!s}; {resume}"


def _parsed(value: str) -> Any:
    """An override's value: a number where it is one, else the text (also inf, nan and an
    integer too large for a float: checks.finite_number)."""
    number: int | float
    try:
        number = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            return value
    return number if finite_number(number) is not None else value


def _swept(overrides: list[tuple[str, ...]]) -> set[str]:
    """The override keys whose value differs between the jobs of one sweep."""
    values: dict[str, set[str]] = {}
    for job in overrides:
        for override in job:
            key, sep, value = override.partition("=")
            if sep:
                values.setdefault(key.lstrip("+~"), set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def _objective(record: Mapping[str, Any]) -> tuple[str | None, float | None]:
    objective = as_mapping(record.get("objective"))
    metric = objective.get("metric")
    metric = _text(metric, 60) if isinstance(metric, str) and metric else None
    return metric, finite_number(objective.get("value"))


def sweep_rows(workspace: Path, sweep_dir: Path) -> list[RunRow]:
    """One row per job of one sweep folder, the best finished one marked."""
    sweep = _relative(sweep_dir, workspace)
    origin = ORIGIN_OPTUNA if (sweep_dir / OPTUNA_STUDY_FILE).is_file() else ORIGIN_MULTIRUN
    jobs = []
    for folder in (child for child in _dirs(sweep_dir) if _is_job(child)):
        record, why = (
            _read_record(folder / JOB_STATUS_FILE)
            if (folder / JOB_STATUS_FILE).is_file()
            else ({}, None)
        )
        overrides = (
            _overrides(record["overrides"])
            if isinstance(record.get("overrides"), list)
            else _hydra_overrides(folder) or ()
        )
        jobs.append((folder, record, why, overrides))
    swept = _swept([overrides for *_, overrides in jobs])
    rows = []
    for folder, record, why, overrides in jobs:
        status, reason = _job_status(record, why, sweep)
        run_dir = folder / SWEEP_JOB_RUN_DIR
        summary: dict[str, Any] = {}
        if (run_dir / TRAIN_SUMMARY_FILE).is_file():
            summary, bad = _read_record(run_dir / TRAIN_SUMMARY_FILE)
            reason = "; ".join(filter(None, [reason, bad])) or None
        fields = _summary_fields(summary)
        if fields["run_id"] is None:  # written when the run starts: interrupted runs have it
            links, _ = (
                _read_record(folder / RUN_LINKS_FILE)
                if (folder / RUN_LINKS_FILE).is_file()
                else ({}, None)
            )
            fields["run_id"] = _summary_fields(links)["run_id"]
        run_id = record.get("run_id")
        if isinstance(run_id, str) and run_id:
            fields["run_id"] = _text(run_id, _NAME_LIMIT)
        if fields["model"] is None:
            fields["model"] = next(
                (o.partition("=")[2] for o in overrides if o.startswith("model=")), None
            )
        metric, value = _objective(record)
        job = _count(record.get("job"))
        job = job if job is not None else _job_number(folder)
        params = {}
        for override in overrides:
            key, _, text = override.partition("=")
            if key.lstrip("+~") in swept:
                params[key.lstrip("+~")] = _parsed(text)
        rows.append(
            RunRow(
                origin=origin,
                name=_text(f"{sweep_dir.name}#{job if job is not None else folder.name}"),
                status=status,
                reason=reason,
                overrides=overrides,
                scores={metric: value} if metric in REPORTED_SCORES and value is not None else {},
                objective_metric=metric,
                objective=value,
                wandb_dir=_wandb_dir(run_dir, fields["run_id"], workspace),
                folder=_relative(run_dir if run_dir.is_dir() else folder, workspace),
                sweep=sweep,
                job=job,
                params=params,
                **fields,
            )
        )
    return _mark_best(rows)


def _mark_best(rows: list[RunRow]) -> list[RunRow]:
    """The finished row with the best objective (metric_keys says which way is better)."""
    scored = [row for row in rows if row.status == FINISHED and row.objective is not None]
    if not scored:
        return rows
    higher = scored[0].objective_metric in HIGHER_IS_BETTER
    best = (max if higher else min)(scored, key=lambda row: row.objective)
    return [replace(row, best=True) if row is best else row for row in rows]


def collect_runs(
    workspace: Path,
    *,
    experiments: bool = True,
    warn: Warn | None = None,
    sweeps: Iterable[Path] = (),
) -> list[RunRow]:
    """Every run genlab knows in ``workspace``, from records only: ``dvc repro`` runs, DVC
    experiments (unless ``experiments`` is False), then the jobs of each sweep under multirun/
    and under ``sweeps`` (more folders to look for sweeps in; a relative one is taken from the
    working directory). A broken record becomes a row with a reason; a failure to read DVC's
    experiments, one ``warn`` line."""
    workspace = Path(workspace).absolute()
    rows = repro_rows(workspace)
    if experiments:
        rows += experiment_rows(workspace, warn)
    for sweep_dir in sweep_folders(workspace, [Path(folder).absolute() for folder in sweeps]):
        rows += sweep_rows(workspace, sweep_dir)
    return rows


# -- sorting, filtering, showing ------------------------------------------------------------------
_FIELDS = tuple(f.name for f in fields(RunRow) if f.name not in ("scores", "params", "overrides"))
#: what --sort and --filter may name: a RunRow field, a score (metric_keys.REPORTED_SCORES), or
#: ``params.<swept key>``
ROW_KEYS = (*_FIELDS, "overrides", *REPORTED_SCORES)
_FILTER = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")
FILTER_FORMS = "KEY=VALUE, KEY!=VALUE, KEY<N, KEY<=N, KEY>N or KEY>=N"


def _check_key(key: str) -> str:
    if key in ROW_KEYS or (key.startswith("params.") and len(key) > len("params.")):
        return key
    raise ValueError(
        f"unknown key {printable(key, 60)!r}: use one of {', '.join(ROW_KEYS)}, "
        "or params.<swept key>"
    )


def row_value(row: RunRow, key: str) -> Any:
    """The value of column ``key`` of a row (None: the row has none)."""
    if key in REPORTED_SCORES:
        return row.scores.get(key)
    if key.startswith("params."):
        return row.params.get(key.removeprefix("params."))
    if key == "overrides":
        return " ".join(row.overrides) or None
    return getattr(row, key)


def parse_sort(key: str) -> str:
    """A --sort KEY, checked (ValueError naming the keys there are)."""
    return _check_key(key.strip())


def sort_rows(rows: list[RunRow], key: str, *, descending: bool = False) -> list[RunRow]:
    """Rows ordered by ``key``, ascending unless ``descending``; rows without it last."""
    _check_key(key)
    present = [row for row in rows if row_value(row, key) is not None]
    missing = [row for row in rows if row_value(row, key) is None]

    def order(row: RunRow) -> tuple[int, Any]:
        value = row_value(row, key)
        number = finite_number(value)
        return (0, number) if number is not None else (1, str(value).lower())

    return sorted(present, key=order, reverse=descending) + missing


@dataclass(frozen=True)
class RowFilter:
    """One --filter: ``key op value``; ``<``, ``<=``, ``>``, ``>=`` compare numbers, ``=`` and
    ``!=`` numbers or text (text case-insensitively)."""

    key: str
    op: str
    value: str

    def matches(self, row: RunRow) -> bool:
        actual = row_value(row, self.key)
        if actual is None:
            return self.op == "!="
        if self.op in ("=", "!="):
            try:
                number = finite_number(actual)
                equal = number is not None and number == float(self.value)
            except ValueError:
                equal = False
            equal = equal or str(actual).lower() == self.value.lower()
            return equal if self.op == "=" else not equal
        value = finite_number(actual)
        if value is None:
            return False
        number = float(self.value)
        return {
            "<": value < number,
            "<=": value <= number,
            ">": value > number,
            ">=": value >= number,
        }[self.op]


def parse_filter(text: str) -> RowFilter:
    """A --filter expression (``status=failed``, ``kid_mean<0.05``), or ValueError naming the
    accepted forms."""
    match = _FILTER.match(text)
    if not match or not match.group(3):
        raise ValueError(f"bad filter {printable(text, 60)!r}: expected {FILTER_FORMS}")
    key, op, value = match.groups()
    _check_key(key)
    if op not in ("=", "!="):
        try:
            float(value)
        except ValueError:
            raise ValueError(
                f"bad filter {printable(text, 60)!r}: {op} compares numbers, "
                f"{printable(value, 40)!r} is not one (expected {FILTER_FORMS})"
            ) from None
    return RowFilter(key, op, value)


def filter_rows(rows: list[RunRow], filters: list[RowFilter]) -> list[RunRow]:
    """The rows every filter matches."""
    return [row for row in rows if all(f.matches(row) for f in filters)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


TABLE_COLUMNS = (
    "origin",
    "name",
    "status",
    "model",
    "overrides",
    *(header for _, header in TABLE_SCORES),
    "steps",
    "img/s",
    "W&B id",
    "folder",
)


def format_table(rows: list[RunRow], *, overrides_width: int = 48) -> str:
    """The rows as a fixed-column text table; ``*`` marks the best run of a sweep, and a
    failed or interrupted row's reason follows it on its own indented line."""
    body = []
    for row in rows:
        body.append(
            (
                row.origin,
                ("* " if row.best else "") + row.name,
                row.status,
                _cell(row.model),
                _cut(" ".join(row.overrides) or "-", overrides_width),
                *(_cell(row.scores.get(key)) for key, _ in TABLE_SCORES),
                _cell(row.steps),
                _cell(row.images_per_s),
                _cell(row.run_id),
                _cell(row.folder),
            )
        )
    widths = [max(len(c) for c in column) for column in zip(TABLE_COLUMNS, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=True)).rstrip()]
    for row, cells in zip(rows, body, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if row.reason:
            lines.append(f"    {'note' if row.status == FINISHED else row.status}: {row.reason}")
    if any(row.best for row in rows):
        lines.append("* the best finished run of its sweep by its objective")
    return "\n".join(lines)


def rows_json(rows: list[RunRow]) -> list[dict[str, Any]]:
    """The rows for ``--json``: each RunRow.as_json()."""
    return [row.as_json() for row in rows]
