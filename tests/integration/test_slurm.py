"""genlab on a real SLURM cluster (tests/support/slurm_cluster.py: a controller and two nodes on
this host): Hydra sweeps through submitit, 2-node DDP, pre-emption with requeue and resume, and a
job that dies. Every job goes through `python pipelines/train.py -m hydra/launcher=slurm`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab.layout import GENERATOR_FILE, TRAIN_SUMMARY_FILE
from genlab.tracking.job_records import JOB_RUNNING

from ..conftest import PROJECT_ROOT, tiny_model_overrides
from ..support import slurm_cluster

# Each test stays far under torch's 30-minute rendezvous timeout, which a broken rendezvous
# would otherwise sit through.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KILL = "tests.support.planted.KillAtIteration"


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """One throwaway cluster for this file, stopped (jobs cancelled first) at the end.

    Skips only when SLURM cannot be installed here; a cluster that does not come up
    (SlurmStartError, with the daemons' logs) is an error, as is any other failure."""
    root = tmp_path_factory.mktemp("slurm")
    try:
        cluster = slurm_cluster.start(root)  # stops what it started if it fails
    except slurm_cluster.SlurmUnavailable as reason:
        pytest.skip(f"no SLURM cluster: {reason}")
    try:
        yield cluster
    finally:
        slurm_cluster.stop(root)


def sweep_command(tmp_path: Path, digits_dir: Path, *overrides: str, nodes: int = 1) -> list[str]:
    """A sweep on the test cluster: CPU-sized jobs, tiny networks, W&B offline."""
    return [
        sys.executable,
        str(PROJECT_ROOT / "pipelines/train.py"),
        "-m",
        "hydra/launcher=slurm",
        f"hydra.launcher.nodes={nodes}",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.partition={slurm_cluster.PARTITION}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        f"data.dir={digits_dir}",
        "logger.mode=offline",
        "data.batch_size=16",
        "trainer.precision=32-true",
        *tiny_model_overrides("dcgan"),
        *overrides,
    ]


def run_sweep(
    cluster, command: list[str], cwd: Path, timeout: float = 200, env: dict[str, str] | None = None
):
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=cwd,
        env={
            **cluster.env(),
            "PYTHONPATH": str(PROJECT_ROOT),
            "WANDB_MODE": "offline",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(f"sweep wall time: {time.monotonic() - started:.1f} s")
    return result


# A `sitecustomize` that reports, on stderr (submitit's per-task log), every file a process
# creates or renames into a folder, tagged with its SLURM task: which rank wrote what. It only
# observes (an audit hook); the writes happen as they would without it.
WRITE_WATCH = """import os, sys

_UNDER = os.environ.get("GENLAB_TEST_WATCH_WRITES")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _report(path):
    path = os.path.abspath(os.fsdecode(path))
    if path.startswith(_UNDER + os.sep):
        rank = os.environ.get("SLURM_PROCID", "-")
        print(f"genlab-test-write task={rank} {path}", file=sys.stderr, flush=True)


def _hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2]
        if (mode and set(mode) & set("wax+")) or (mode is None and flags & _WRITE_FLAGS):
            _report(args[0])
    elif event == "os.rename":
        _report(args[1])


if _UNDER:
    sys.addaudithook(_hook)
    if "SLURM_PROCID" in os.environ:
        print(f"genlab-test-watch task={os.environ['SLURM_PROCID']}", file=sys.stderr, flush=True)
"""
WRITE_LINE = re.compile(r"^genlab-test-write task=(\S+) (.+)$", re.MULTILINE)


def watch_writes(tmp_path: Path, watched: Path) -> dict[str, str]:
    """The environment of a sweep whose processes report each file they write under
    ``watched`` (see WRITE_WATCH) in their logs."""
    folder = tmp_path / "watch_writes"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(WRITE_WATCH)
    return {"PYTHONPATH": f"{folder}:{PROJECT_ROOT}", "GENLAB_TEST_WATCH_WRITES": str(watched)}


def writes_by_task(logs: dict[str, str], under: Path) -> dict[str, set[str]]:
    """SLURM task -> the files (relative to ``under``) it created or renamed into place."""
    written: dict[str, set[str]] = {}
    for task, path in WRITE_LINE.findall("\n".join(logs.values())):
        written.setdefault(task, set()).add(str(Path(path).relative_to(under)))
    return written


def submitit_logs(sweep_dir: Path) -> dict[str, str]:
    """Every task's submitit log (stdout and stderr), by file name."""
    return {
        path.name: path.read_text(errors="replace")
        for path in (sweep_dir / ".submitit").glob("*/*_log.*")
    }


def slurm_job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM jobs that ran for a sweep: submitit keeps one folder each, with their logs."""
    folders = (sweep_dir / ".submitit").iterdir()
    return sorted(folder.name for folder in folders if any(folder.glob("*_log.out")))


def test_sweep_runs_each_job_as_its_own_slurm_job(slurm, tmp_path, digits_dir):
    result = run_sweep(
        slurm, sweep_command(tmp_path, digits_dir, "seed=1,2", "train.steps=10"), tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "2 of 2 jobs succeeded" in result.stdout
    sweep_dir = tmp_path / "multirun"
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [job["status"] for job in summary["jobs"]] == ["ok", "ok"]
    run_ids = set()
    for job in summary["jobs"]:
        run_dir = sweep_dir / str(job["job"]) / "run"
        train = json.loads((run_dir / "train_summary.json").read_text())
        assert train["run_id"] == job["run_id"] and train["steps"] == 10
        assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1, "one W&B run per job"
        run_ids.add(job["run_id"])
    assert len(run_ids) == 2, "each job is its own run"
    # Both went through SLURM: an array of two tasks, both COMPLETED in the controller's books.
    slurm_ids = slurm_job_ids(sweep_dir)
    assert len(slurm_ids) == 2
    # submitit hands back a job's result before its process has exited: the controller may
    # list a task RUNNING for a moment after the sweep returns, so wait for its books to settle.
    deadline = time.monotonic() + 60
    while True:
        states = {slurm.jobs().get(slurm_id) for slurm_id in slurm_ids}
        if not states & {"RUNNING", "COMPLETING"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == {"COMPLETED"}


def test_two_nodes_train_one_ddp_run(slurm, tmp_path, digits_dir):
    command = sweep_command(
        tmp_path,
        digits_dir,
        "trainer=slurm",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.num_nodes=2",
        "trainer.precision=32-true",
        "train.steps=20",
        "train.sample_every_n_steps=10",
        nodes=2,
    )
    run_dir = tmp_path / "multirun/0/run"
    result = run_sweep(slurm, command, tmp_path, env=watch_writes(tmp_path, run_dir))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    train = json.loads((run_dir / "train_summary.json").read_text())
    assert train["world_size"] == 2 and train["steps"] == 20
    assert train["batch_size_global"] == 32
    assert train["replica_max_abs_diff"] == 0.0, "both nodes must hold identical weights"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1, "one W&B run"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.ckpt",
        "run_id",
        "training_fingerprint",
    ]
    # One SLURM task on each node, each a DDP rank: submitit's and Lightning's own words.
    logs = submitit_logs(tmp_path / "multirun")
    ranks = {}
    for text in logs.values():
        env = re.search(r"node=(\d)\(2\), global_rank=(\d)\(2\)", text)
        if env:
            ranks[env.group(1)] = env.group(2)
    assert ranks == {"0": "0", "1": "1"}, f"node -> global rank from submitit's logs: {ranks}"
    members = set(re.findall(r"GLOBAL_RANK: (\d), MEMBER: \d/2", "\n".join(logs.values())))
    assert members == {"0", "1"}, "Lightning started a 2-member process group"
    written = writes_by_task(logs, run_dir)
    print(f"files written under the run folder, by SLURM task: {written}")
    watching = re.findall(r"^genlab-test-watch task=(\d)$", "\n".join(logs.values()), re.M)
    assert set(watching) == {"0", "1"}, "both tasks report their writes"
    # Both ranks would write the same names in the same folder: only the writers tell.
    saved = {"checkpoints/last.ckpt", GENERATOR_FILE, TRAIN_SUMMARY_FILE}
    assert saved <= written.get("0", set()), "rank 0 saves the checkpoint and the run"
    by_rank_1 = {p for p in written.get("1", set()) if p in saved or p.startswith("checkpoints/")}
    assert not by_rank_1, f"checkpoints and outputs are written once, by rank 0: {by_rank_1}"
    (slurm_id,) = slurm_job_ids(tmp_path / "multirun")
    assert re.search(r"NumNodes=2 ", slurm.run("scontrol", "show", "job", slurm_id).stdout)


INTERRUPTIONS = {
    # pre-emption (or an admin): SLURM sends SIGTERM and puts the job back in the queue
    "requeue": ["scontrol", "requeue"],
    # the warning submitit asks for before the time limit (signal_delay_s); submitit requeues
    "time_limit_signal": ["scancel", "--signal=USR2"],
}


@pytest.mark.parametrize("interruption", sorted(INTERRUPTIONS))
def test_requeued_job_resumes_from_its_checkpoint(slurm, tmp_path, digits_dir, interruption):
    steps = 300  # ~10 s of training left after the first grid: the requeue lands mid-run
    command = sweep_command(
        tmp_path,
        digits_dir,
        f"train.steps={steps}",
        "train.sample_every_n_steps=20",
        "train.checkpoint_every_n_steps=100000",  # the only last.ckpt is the pre-emption's
    )
    sweep = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**slurm.env(), "PYTHONPATH": str(PROJECT_ROOT), "WANDB_MODE": "offline"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        run_dir = tmp_path / "multirun/0/run"
        wait_for(lambda: any((run_dir / "samples").glob("step_*.png")), sweep)
        run_id = (run_dir / "checkpoints/run_id").read_text().strip()
        (slurm_id,) = slurm_job_ids(tmp_path / "multirun")
        slurm.run(*INTERRUPTIONS[interruption], slurm_id)
        wait_for(lambda: slurm.jobs().get(slurm_id) == "PENDING", sweep)
        assert (run_dir / "checkpoints/last.ckpt").is_file(), "saved when interrupted"
        record = json.loads((tmp_path / "multirun/0/genlab_job.json").read_text())
        assert record["status"] == JOB_RUNNING, "no final status yet: SLURM requeues the job"
        # SLURM holds a requeued job for ~2 minutes (BeginTime); an admin may release it now.
        slurm.run("scontrol", "update", f"JobId={slurm_id}", "StartTime=now")
        stdout, stderr = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    print(f"sweep wall time: {time.monotonic() - started:.1f} s")
    assert sweep.returncode == 0, stdout[-2000:] + stderr[-3000:]
    train = json.loads((run_dir / "train_summary.json").read_text())
    resumed_at = train["resumed_from_step"]
    print(f"{interruption} evidence: resumed_from_step={resumed_at} run_id={run_id}")
    assert train["resumed"] is True and 0 < train["resumed_from_step"] < steps
    assert train["run_id"] == run_id, "the requeued job continues the same run (and W&B run)"
    assert train["steps"] == steps
    wandb_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in wandb_runs), (
        "both attempts log to the one W&B run"
    )
    assert "Restarts=1 " in slurm.run("scontrol", "show", "job", slurm_id).stdout
    summary = json.loads((tmp_path / "multirun/sweep_summary.json").read_text())
    assert [job["status"] for job in summary["jobs"]] == ["ok"]


def test_job_that_dies_is_reported_failed(slurm, tmp_path, digits_dir):
    command = sweep_command(
        tmp_path,
        digits_dir,
        "train.steps=10",
        f"+callbacks.kill._target_={KILL}",
        "+callbacks.kill.iteration=3,1000",  # job 0 is SIGKILLed at iteration 3; job 1 finishes
    )
    result = run_sweep(slurm, command, tmp_path, timeout=200)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "1 of 2 jobs succeeded" in result.stdout
    summary = json.loads((tmp_path / "multirun/sweep_summary.json").read_text())
    dead, finished = summary["jobs"]
    assert finished["status"] == "ok"
    assert dead["status"] == "failed" and "+callbacks.kill.iteration=3" in dead["overrides"]
    assert "died without a record" in dead["error"] and "FAILED" in dead["error"]
    assert "died without a record" in result.stdout, "the printed table names it too"


def wait_for(condition, process: subprocess.Popen, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"sweep ended early: {process.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the SLURM job"
        time.sleep(0.2)
