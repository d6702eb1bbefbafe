"""genlab.reporting.runs: every run of a workspace as one table, from the records genlab
writes (train_summary.json, metrics/<run name>.json, a sweep job's genlab_job.json), sorted,
filtered and shown; a broken or hostile record is a row with a reason, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.io import write_json
from genlab.layout import (
    HYDRA_DIR,
    HYDRA_OVERRIDES_FILE,
    JOB_STATUS_FILE,
    METRICS_DIR,
    MULTIRUN_YAML,
    OPTUNA_STUDY_FILE,
    RUN_LINKS_FILE,
    RUNS_DIR,
    SWEEP_JOB_RUN_DIR,
    RunLayout,
    metrics_file,
    run_name,
)
from genlab.reporting.runs import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    ORIGIN_EXPERIMENT,
    ORIGIN_MULTIRUN,
    ORIGIN_OPTUNA,
    ORIGIN_REPRO,
    RUNNING,
    RunRow,
    collect_runs,
    experiment_rows,
    filter_rows,
    format_table,
    parse_filter,
    parse_sort,
    sort_rows,
)
from genlab.reporting.runs_page import GENERATOR_META, runs_page_html
from genlab.tracking.job_records import JOB_FAILED, JOB_OK, JOB_RUNNING

from ..support.cli import one_line, run_cli


# -- the records, as genlab writes them (stages/train.py, stages/evaluate, tracking/sweep.py) --
def train_summary(run_id: str, model: str = "dcgan", steps: int = 20, **extra) -> dict:
    return {
        "run_id": run_id,
        "model": model,
        "steps": steps,
        "resumed": False,
        "resumed_from_step": 0,
        "wall_time_s": 1.5,
        "world_size": 1,
        "batch_size_per_device": 16,
        "batch_size_global": 16,
        "links": {"run_id": run_id, "wandb_run_id": run_id, "run_dir": "x"},
        "code_changes": [],
        "final": {},
        "training_loop_s": 1.0,
        "images_per_s": 320.0,
        **extra,
    }


# `dvc repro` runs: one model trained from one seed, named by genlab.layout
DCGAN = run_name("dcgan", 0)
VAE = run_name("vae", 1)


def repro_dir(workspace: Path, run: str) -> Path:
    return workspace / RUNS_DIR / run


def repro_metrics(workspace: Path, run: str) -> Path:
    return metrics_file(workspace / METRICS_DIR, run)


def write_run(run_dir: Path, summary: dict) -> None:
    write_json(RunLayout.at(run_dir).summary, summary)
    (RunLayout.at(run_dir).wandb / f"offline-run-20260101_000000-{summary['run_id']}").mkdir(
        parents=True
    )


def write_job(
    sweep: Path, job: int, status: str, overrides: list[str], *, summary: dict | None = None, **f
) -> Path:
    folder = sweep / str(job)
    folder.mkdir(parents=True)
    record = {
        "job": job,
        "overrides": overrides,
        "output_dir": str(folder),
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00",
        **f,
    }
    write_json(folder / JOB_STATUS_FILE, record)
    if summary is not None:
        write_run(folder / SWEEP_JOB_RUN_DIR, summary)
    return folder


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def sweep_workspace(root: Path, *, optuna: bool = False, metric: str = "kid_mean") -> Path:
    sweep = root / "multirun" / ("search/lr" if optuna else "2026-01-01_00-00-00")
    sweep.mkdir(parents=True)
    (sweep / MULTIRUN_YAML).write_text("hydra: {}\n")
    if optuna:
        (sweep / OPTUNA_STUDY_FILE).write_bytes(b"SQLite format 3\x00")
    common = ["data.dir=/data/digits", "train.steps=20"]
    for job, (lr, value) in enumerate([("1e-4", 0.30), ("2e-4", 0.05), ("5e-4", 0.12)]):
        write_job(
            sweep,
            job,
            JOB_OK,
            [f"model.optim.lr={lr}", "model=dcgan", *common],
            summary=train_summary(f"run{job}"),
            run_id=f"run{job}",
            objective={"metric": metric, "value": value},
        )
    write_job(
        sweep,
        3,
        JOB_FAILED,
        ["model.optim.lr=1e30", "model=dcgan", *common],
        error="NonFiniteLossError: loss became nan at step 3",
        exit_code=1,
    )
    write_job(sweep, 4, JOB_RUNNING, ["model.optim.lr=9e-4", "model=dcgan", *common])
    record = json.loads((sweep / "4" / JOB_STATUS_FILE).read_text())
    write_json(sweep / "4" / JOB_STATUS_FILE, {**record, "pid": dead_pid()})
    (sweep / "5" / ".hydra").mkdir(parents=True)  # started, killed before any record
    return sweep


def by_name(rows: list[RunRow]) -> dict[str, RunRow]:
    return {row.name: row for row in rows}


# -- dvc repro runs ----------------------------------------------------------------------------
def test_repro_run_row_reads_summary_metrics_and_hydra_overrides(tmp_path):
    output_dir = tmp_path / "outputs/train/2026-01-01_00-00-00"
    (output_dir / ".hydra").mkdir(parents=True)
    (output_dir / ".hydra/overrides.yaml").write_text("- data=digits\n- model=dcgan\n")
    summary = train_summary("abc123", steps=40)
    summary["links"]["hydra_output_dir"] = "outputs/train/2026-01-01_00-00-00"
    write_run(repro_dir(tmp_path, DCGAN), summary)
    scores = {"extractor": "x", "fid": 41.5, "kid_mean": 0.031, "isc_mean": 2.25, "isc_std": 0.1}
    write_json(repro_metrics(tmp_path, DCGAN), {**scores, "floor": {"fid": 1.0}})
    vae = {"model": "vae", "seed": 1, "run_name": VAE, "extractor": "x", "fid": 60.0}
    write_json(repro_metrics(tmp_path, VAE), vae)

    rows = by_name(collect_runs(tmp_path))

    assert sorted(rows) == sorted([DCGAN, VAE]), "a row per run, named after it"
    dcgan = rows[DCGAN]
    assert dcgan.origin == ORIGIN_REPRO and dcgan.status == FINISHED and dcgan.reason is None
    assert dcgan.model == "dcgan", "the model its train summary records"
    assert dcgan.overrides == ("data=digits", "model=dcgan")
    assert dcgan.scores == {k: v for k, v in scores.items() if k != "extractor"}
    assert (dcgan.steps, dcgan.images_per_s, dcgan.run_id) == (40, 320.0, "abc123")
    assert dcgan.folder == f"{RUNS_DIR}/{DCGAN}"
    assert dcgan.wandb_dir == f"{RUNS_DIR}/{DCGAN}/wandb/offline-run-20260101_000000-abc123"
    # scored, its run folder not here (trained elsewhere): the scores, no folder; the model
    # and seed its metrics record names
    assert rows[VAE].scores == {"fid": 60.0} and rows[VAE].folder is None
    assert rows[VAE].model == "vae" and rows[VAE].overrides == ("model=vae", "seed=1")


def test_paths_are_relative_to_a_workspace_given_relative(tmp_path, monkeypatch):
    write_run(repro_dir(tmp_path, VAE), train_summary("r1", model="vae"))
    monkeypatch.chdir(tmp_path.parent)
    (row,) = collect_runs(Path(tmp_path.name))
    folder = f"{RUNS_DIR}/{VAE}"
    assert row.folder == folder and row.wandb_dir.startswith(f"{folder}/wandb/")


def test_unfinished_repro_run_is_interrupted_and_says_how_to_resume(tmp_path):
    (RunLayout.at(repro_dir(tmp_path, VAE)).checkpoints).mkdir(parents=True)
    (row,) = collect_runs(tmp_path)
    assert row.status == INTERRUPTED and "dvc repro" in row.reason and "last.ckpt" in row.reason
    # nothing recorded yet: the model and seed its run's name says
    assert (row.name, row.model, row.overrides) == (VAE, "vae", ("model=vae", "seed=1"))


# -- sweeps ------------------------------------------------------------------------------------
def test_sweep_jobs_become_rows_with_status_params_and_the_best_marked(tmp_path):
    sweep = sweep_workspace(tmp_path)
    rows = by_name(collect_runs(tmp_path))
    prefix = f"{sweep.name}#"
    assert sorted(rows) == [f"{prefix}{n}" for n in range(6)]
    assert {row.origin for row in rows.values()} == {ORIGIN_MULTIRUN}
    ok = rows[f"{prefix}1"]
    assert ok.status == FINISHED and ok.best and ok.objective == 0.05
    assert ok.objective_metric == "kid_mean" and ok.scores == {"kid_mean": 0.05}
    assert ok.params == {"model.optim.lr": 2e-4}, "only the swept key, parsed to a number"
    assert (ok.steps, ok.images_per_s, ok.run_id, ok.job) == (20, 320.0, "run1", 1)
    assert ok.folder == f"multirun/{sweep.name}/1/run" and ok.sweep == f"multirun/{sweep.name}"
    assert ok.wandb_dir == f"multirun/{sweep.name}/1/run/wandb/offline-run-20260101_000000-run1"
    assert [row.name for row in rows.values() if row.best] == [ok.name]
    failed = rows[f"{prefix}3"]
    assert failed.status == FAILED and "loss became nan" in failed.reason
    assert failed.params == {"model.optim.lr": 1e30} and not failed.best
    gone = rows[f"{prefix}4"]
    pid = json.loads((sweep / "4" / JOB_STATUS_FILE).read_text())["pid"]
    assert gone.status == INTERRUPTED
    assert f"process {pid} is gone" in gone.reason
    assert f"hydra.sweep.dir=multirun/{sweep.name}" in gone.reason
    never = rows[f"{prefix}5"]
    assert never.status == INTERRUPTED and "hydra.sweep.dir=" in never.reason


@pytest.mark.parametrize(("metric", "best_job"), [("kid_mean", 1), ("isc_mean", 0)])
def test_optuna_sweep_rows_and_the_best_follows_the_metric_direction(tmp_path, metric, best_job):
    sweep = sweep_workspace(tmp_path, optuna=True, metric=metric)
    rows = collect_runs(tmp_path)
    assert {row.origin for row in rows} == {ORIGIN_OPTUNA}
    assert {row.sweep for row in rows} == {"multirun/search/lr"}
    (best,) = [row for row in rows if row.best]
    assert best.name == f"{sweep.name}#{best_job}"


def test_running_job_is_running_while_its_process_lives_then_interrupted(tmp_path):
    sweep = tmp_path / "multirun/s"
    folder = write_job(sweep, 0, JOB_RUNNING, ["model=dcgan"])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json(folder / JOB_STATUS_FILE, {**_record(folder), "pid": child.pid})
        (row,) = collect_runs(tmp_path)
        assert row.status == RUNNING and row.reason is None
    finally:
        child.kill()
        child.wait()
    (row,) = collect_runs(tmp_path)
    assert row.status == INTERRUPTED and f"process {child.pid} is gone" in row.reason
    # another machine's job cannot be checked from here: running, and said so
    write_json(folder / JOB_STATUS_FILE, {**_record(folder), "host": "node-17"})
    (row,) = collect_runs(tmp_path)
    assert row.status == RUNNING and "node-17" in row.reason


def _record(folder: Path) -> dict:
    return json.loads((folder / JOB_STATUS_FILE).read_text())


# -- hostile records -----------------------------------------------------------------------------
def test_hostile_records_become_rows_with_reasons(tmp_path):
    sweep = tmp_path / "multirun/s"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / JOB_STATUS_FILE).write_text("{not json")
    (sweep / "1").mkdir()
    (sweep / "1" / JOB_STATUS_FILE).write_text("[1, 2]")
    token_url = "https://user:s3cret@example.com/data.zip"
    write_job(
        sweep,
        2,
        JOB_FAILED,
        [f"data.source.url={token_url}", "model=\x1b[31mdcgan", 7],
        error="boom \x1b[2J" + "x" * 100_000,
        objective={"metric": ["kid_mean"], "value": "0.1"},
    )
    write_json(sweep / "2" / JOB_STATUS_FILE, {**_record(sweep / "2"), "job": "two"})
    write_job(
        sweep,
        3,
        JOB_OK,
        "not a list",
        summary=train_summary("r3", steps="ten", images_per_s=float("nan")),
        objective={"metric": "kid_mean", "value": float("nan")},
    )
    write_json(sweep / "3" / JOB_STATUS_FILE, {**_record(sweep / "3"), "pid": "12"})
    RunLayout.at(repro_dir(tmp_path, DCGAN)).summary.parent.mkdir(parents=True)
    RunLayout.at(repro_dir(tmp_path, DCGAN)).summary.write_text('"a string"')
    repro_metrics(tmp_path, DCGAN).parent.mkdir()
    repro_metrics(tmp_path, DCGAN).write_bytes(b"\xff\xfe not utf-8")
    write_json(repro_metrics(tmp_path, VAE), {"fid": "40", "kid_mean": True, "isc_mean": 3})

    rows = by_name(collect_runs(tmp_path))

    assert rows["s#0"].status == INTERRUPTED and "not JSON" in rows["s#0"].reason
    assert rows["s#1"].status == INTERRUPTED and "not a JSON object" in rows["s#1"].reason
    hostile = rows["s#2"]
    assert hostile.status == FAILED and hostile.job == 2 and hostile.objective is None
    assert all("s3cret" not in o for o in hostile.overrides) and len(hostile.overrides) == 2
    assert "\x1b" not in " ".join(hostile.overrides) + hostile.reason
    assert len(hostile.reason) < 1000
    # a URL cut by the length bound is dropped, not shown half-redacted
    cut_url = "y " * 995 + "https://u:t0ken@example.com/" + "z" * 5000
    write_json(sweep / "2" / JOB_STATUS_FILE, {**_record(sweep / "2"), "error": cut_url})
    assert "t0k" not in by_name(collect_runs(tmp_path))["s#2"].reason
    nan = rows["s#3"]
    assert nan.status == FINISHED and nan.overrides == () and nan.objective is None
    assert nan.steps is None and nan.images_per_s is None and not nan.best
    broken = rows[DCGAN]
    assert broken.status == FINISHED
    assert "train_summary.json" in broken.reason
    assert repro_metrics(tmp_path, DCGAN).name in broken.reason
    assert rows[VAE].scores == {"isc_mean": 3.0}, "a string or a bool is not a score"
    table = format_table(list(rows.values()))
    assert "\x1b" not in table and "s3cret" not in table


DEEP = "[" * 100_000  # nested deeper than any parser's stack: RecursionError, not ValueError
HUGE = 10**400  # a JSON integer no float holds: float() and math.isfinite() raise on it


def test_crafted_records_cannot_crash_the_table(tmp_path):
    """Nesting deeper than the parsers' stack (JSON and Hydra's YAML), integers too large for a
    float, a job folder named by a digit int() refuses: rows with reasons or without the
    value, and the table, sort, filters and page all work on them."""
    sweep = tmp_path / "multirun/s"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / JOB_STATUS_FILE).write_text(DEEP)
    (sweep / "1" / HYDRA_DIR).mkdir(parents=True)
    (sweep / "1" / HYDRA_DIR / HYDRA_OVERRIDES_FILE).write_text(DEEP)
    big_lr = "1" + "0" * 400
    write_job(
        sweep,
        2,
        JOB_OK,
        ["model=dcgan", f"model.optim.lr={big_lr}"],
        summary=train_summary("r2", steps=HUGE, images_per_s=HUGE),
        objective={"metric": "kid_mean", "value": HUGE},
    )
    write_json(sweep / "2" / JOB_STATUS_FILE, {**_record(sweep / "2"), "job": HUGE})
    write_job(
        sweep,
        3,
        JOB_OK,
        ["model=dcgan", "model.optim.lr=2e-4"],
        summary=train_summary("r3"),
        objective={"metric": "kid_mean", "value": 0.1},
    )
    (sweep / "\u00b2" / HYDRA_DIR).mkdir(parents=True)  # "²": str.isdigit says yes, int() no
    output = tmp_path / "outputs/train/x"
    (output / HYDRA_DIR).mkdir(parents=True)
    (output / HYDRA_DIR / HYDRA_OVERRIDES_FILE).write_text(DEEP)
    summary = train_summary("r9", steps=HUGE)
    summary["links"]["hydra_output_dir"] = "outputs/train/x"
    write_run(repro_dir(tmp_path, DCGAN), summary)
    write_json(repro_metrics(tmp_path, DCGAN), {"fid": HUGE, "kid_mean": 0.02, "seed": HUGE})
    repro_metrics(tmp_path, VAE).write_text(DEEP)

    rows = by_name(collect_runs(tmp_path))

    deep = rows["s#0"]
    assert deep.status == INTERRUPTED and f"{JOB_STATUS_FILE}: " in deep.reason
    assert "not JSON" in deep.reason and "nested too deeply" in deep.reason
    assert rows["s#1"].status == INTERRUPTED and rows["s#1"].overrides == ()
    huge = rows["s#2"]
    assert huge.status == FINISHED and huge.job == 2 and not huge.best
    assert (huge.steps, huge.images_per_s, huge.objective, huge.scores) == (None, None, None, {})
    (lr,) = huge.params.values()
    assert isinstance(lr, str) and lr.startswith("1000"), "too large for a float: kept as text"
    assert rows["s#3"].best and rows["s#3"].params == {"model.optim.lr": 2e-4}
    odd = rows["s#\u00b2"]
    assert odd.status == INTERRUPTED and odd.job is None
    dcgan = rows[DCGAN]
    assert dcgan.steps is None and dcgan.scores == {"kid_mean": 0.02}
    assert dcgan.overrides == ("model=dcgan",), "unreadable Hydra record, huge seed: the default"
    vae = rows[VAE]
    assert repro_metrics(tmp_path, VAE).name in vae.reason and "not JSON" in vae.reason
    # rows built by others (the page's contract) may carry such numbers too
    every = [
        *rows.values(),
        RunRow(ORIGIN_MULTIRUN, "m#9", FINISHED, steps=HUGE, params={"lr": HUGE}),
    ]
    for key in ("params.model.optim.lr", "params.lr", "steps", "objective", "job"):
        for descending in (False, True):
            assert len(sort_rows(every, key, descending=descending)) == len(every)
    for text in ("params.model.optim.lr>1", "params.lr=1", "params.lr>1", "steps<5"):
        assert filter_rows(every, [parse_filter(text)]) == []
    assert "s#2" in format_table(every) and "m#9" in runs_page_html(every)


def test_oversized_record_is_refused_unread(tmp_path):
    folder = tmp_path / "multirun/s/0"
    folder.mkdir(parents=True)
    with open(folder / JOB_STATUS_FILE, "w") as handle:
        handle.write('{"status": "ok", "pad": "')
        handle.write("x" * (5 << 20))
        handle.write('"}')
    (row,) = collect_runs(tmp_path)
    assert row.status == INTERRUPTED and "larger than" in row.reason


def test_a_repo_with_broken_experiment_refs_gives_one_warning(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".git/refs/exps/ab/cd").mkdir(parents=True)
    (tmp_path / ".git/refs/exps/ab/cd/exp-1").write_text("0" * 40 + "\n")
    warnings: list[str] = []
    assert experiment_rows(tmp_path, warnings.append) == []
    assert len(warnings) == 1 and "DVC experiments left out" in warnings[0]
    assert "\n" not in warnings[0]


def test_no_experiment_refs_means_no_dvc_call(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".git/refs/heads").mkdir(parents=True)  # not a repo DVC could open either
    warnings: list[str] = []
    assert experiment_rows(tmp_path, warnings.append) == [] and warnings == []


def test_experiment_rows_from_dvc_table_columns():
    """DVC's own table rows (dvc.repo.experiments.show.tabulate): plain keys for one model,
    ``file:key`` where models share a key; params compared with the baseline commit's."""
    from genlab.reporting.runs import _experiment_rows

    dcgan, vae = (f"{metrics_file(METRICS_DIR, run)}:kid_mean" for run in (DCGAN, VAE))
    metric_headers = [dcgan, vae, "steps"]
    records = [
        {"Experiment": None, "rev": "workspace", "typ": "baseline", "lr": 0.5},
        {"Experiment": None, "rev": "main", "typ": "baseline", "lr": 0.1, "seed": 1},
        {
            "Experiment": "exp-a",
            "rev": "abc",
            "typ": "branch_base",
            "State": None,
            dcgan: 0.02,
            vae: "!",
            "lr": 0.2,
            "seed": 1,
        },
        {"Experiment": "exp-q", "rev": "def", "typ": "branch_base", "State": "Queued"},
    ]
    rows = _experiment_rows(records, metric_headers, ["lr", "seed"])
    assert [(r.origin, r.name, r.model) for r in rows] == [
        (ORIGIN_EXPERIMENT, "exp-a", "dcgan"),
        (ORIGIN_EXPERIMENT, "exp-a", "vae"),
    ]
    assert rows[0].overrides == ("lr=0.2",) and rows[0].scores == {"kid_mean": 0.02}
    assert rows[1].scores == {} and rows[0].status == FINISHED


# -- sorting, filtering, the table ---------------------------------------------------------------
def _rows() -> list[RunRow]:
    return [
        RunRow(ORIGIN_REPRO, "a", FINISHED, model="dcgan", scores={"kid_mean": 0.2, "fid": 50.0}),
        RunRow(ORIGIN_OPTUNA, "s#0", FINISHED, model="vae", scores={"kid_mean": 0.01}),
        RunRow(ORIGIN_OPTUNA, "s#1", FAILED, model="dcgan", reason="loss became nan"),
        RunRow(ORIGIN_MULTIRUN, "m#0", FINISHED, model="dcgan", scores={"fid": 39.5}),
    ]


def test_sort_puts_missing_values_last_both_ways():
    rows = _rows()
    assert [r.name for r in sort_rows(rows, "kid_mean")] == ["s#0", "a", "s#1", "m#0"]
    assert [r.name for r in sort_rows(rows, "kid_mean", descending=True)] == [
        "a",
        "s#0",
        "s#1",
        "m#0",
    ]
    assert [r.name for r in sort_rows(rows, "name")] == ["a", "m#0", "s#0", "s#1"]
    assert [r.status for r in sort_rows(rows, "status", descending=True)][0] == FINISHED


@pytest.mark.parametrize(
    ("expressions", "names"),
    [
        (["status=failed"], ["s#1"]),
        (["origin=optuna"], ["s#0", "s#1"]),
        (["model=dcgan", "status!=failed"], ["a", "m#0"]),
        (["kid_mean<0.05"], ["s#0"]),
        (["fid<=40"], ["m#0"]),
        (["fid>=50", "kid_mean>0.1"], ["a"]),
    ],
)
def test_filters(expressions, names):
    filters = [parse_filter(text) for text in expressions]
    assert [row.name for row in filter_rows(_rows(), filters)] == names


@pytest.mark.parametrize("bad", ["kid_mean<abc", "status", "nokey=1", "=failed", "fid<"])
def test_a_bad_filter_names_the_accepted_forms_or_keys(bad):
    with pytest.raises(ValueError, match=r"KEY=VALUE|unknown key"):
        parse_filter(bad)


def test_a_bad_sort_key_names_the_keys():
    with pytest.raises(ValueError, match="kid_mean"):
        parse_sort("kid")
    assert parse_sort("images_per_s") == "images_per_s"


def test_table_marks_the_best_and_shows_the_failure_reason():
    rows = [*_rows(), RunRow(ORIGIN_MULTIRUN, "m#1", FINISHED, objective=0.1, best=True)]
    lines = format_table(rows).splitlines()
    header = lines[0].split()
    assert header[:5] == ["origin", "name", "status", "model", "overrides"]
    assert header[-4:] == ["img/s", "W&B", "id", "folder"]
    failed = next(i for i, line in enumerate(lines) if " s#1 " in line)
    assert lines[failed + 1].strip() == "failed: loss became nan"
    assert any("* m#1" in line for line in lines)


# -- the CLI (in process; tests/integration/test_runs_cli.py runs it for real) -------------------
def test_cli_runs_json_sort_and_filter(tmp_path, capsys):
    sweep_workspace(tmp_path)
    code, out, _ = run_cli(
        ["runs", "--workspace", str(tmp_path), "--json", "--sort", "objective", "--no-experiments"],
        capsys,
    )
    assert code == 0
    rows = json.loads(out)
    assert [row["objective"] for row in rows][:3] == [0.05, 0.12, 0.30]
    code, out, _ = run_cli(
        ["runs", "--workspace", str(tmp_path), "--filter", "status=failed"], capsys
    )
    assert code == 0 and "loss became nan" in out and "#0" not in out


def test_cli_bad_filter_exits_2_with_one_line(tmp_path, capsys):
    code, _, err = run_cli(["runs", "--workspace", str(tmp_path), "--filter", "fid<x"], capsys)
    assert code == 2 and "KEY=VALUE" in one_line(err.splitlines()[-1])


def test_cli_with_no_runs_says_so(tmp_path, capsys):
    code, out, _ = run_cli(["runs", "--workspace", str(tmp_path)], capsys)
    assert code == 0 and "no runs" in out
    write_json(tmp_path / "multirun/s/0" / RUN_LINKS_FILE, {"run_id": "r"})
    (tmp_path / "multirun/s" / MULTIRUN_YAML).write_text("hydra: {}\n")
    code, out, _ = run_cli(
        ["runs", "--workspace", str(tmp_path), "--filter", "origin=dvc exp"], capsys
    )
    assert code == 0 and "none of the 1 runs" in out


def test_cli_sweeps_adds_folders_outside_multirun(tmp_path, capsys):
    """A sweep written with hydra.sweep.dir outside multirun/ is found through --sweeps: the
    sweep folder itself or a folder above it, each sweep listed once."""
    workspace = tmp_path / "project"
    workspace.mkdir()
    sweep = sweep_workspace(tmp_path / "elsewhere")
    base = ["runs", "--workspace", str(workspace), "--json", "--no-experiments"]
    code, out, _ = run_cli(base, capsys)
    assert code == 0 and json.loads(out) == []
    code, out, _ = run_cli([*base, "--sweeps", str(sweep)], capsys)
    assert code == 0
    names = sorted(row["name"] for row in json.loads(out))
    assert names == [f"{sweep.name}#{job}" for job in range(6)]
    assert {row["sweep"] for row in json.loads(out)} == {str(sweep)}, "outside: shown absolute"
    code, out, _ = run_cli([*base, "--sweeps", str(tmp_path), "--sweeps", str(sweep)], capsys)
    assert code == 0 and sorted(row["name"] for row in json.loads(out)) == names
    code, _, err = run_cli([*base, "--sweeps", str(tmp_path / "missing")], capsys)
    assert code == 2 and "missing is not a folder" in one_line(err)


def test_cli_html_replaces_only_a_runs_page(tmp_path, capsys):
    """--html never overwrites a file it did not write (a README, the DVC report page): one
    line, exit 2, the file as it was; an earlier runs page is replaced."""
    sweep = sweep_workspace(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# my project\n")
    report = tmp_path / "leaderboard/report.html"
    report.parent.mkdir()
    report.write_text("<!DOCTYPE html><html><head><title>report</title></head></html>\n")
    base = ["runs", "--workspace", str(tmp_path), "--no-experiments", "--html"]
    for foreign in (readme, report):
        before = foreign.read_bytes()
        code, out, err = run_cli([*base, str(foreign)], capsys)
        assert code == 2 and "refusing to overwrite" in one_line(err) and out == ""
        assert foreign.read_bytes() == before
    page = tmp_path / "runs.html"
    assert run_cli([*base, str(page)], capsys)[0] == 0 and GENERATOR_META in page.read_text()
    first = page.read_text()
    assert run_cli([*base, str(page), "--filter", "status=failed"], capsys)[0] == 0
    text = page.read_text()
    assert text != first and f"{sweep.name}#3" in text and f"{sweep.name}#0" not in text
