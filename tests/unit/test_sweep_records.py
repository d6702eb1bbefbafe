"""A sweep job's record (genlab.tracking.sweep.record_job): running while it trains, kept when the
same job already finished in its folder, never started twice beside a live process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from genlab.layout import GENERATOR_FILE, JOB_STATUS_FILE, SWEEP_JOB_RUN_DIR
from genlab.tracking.job_records import JOB_OK, JOB_RUNNING
from genlab.tracking.sweep import record_job

SECRET_URL = "data.source.url=https://example.org/data.zip?token=first"


def start_job(output_dir, overrides: list[str]) -> None:
    """Hydra's runtime as a sweep job sees it: job 3 of a sweep, its output folder."""
    hydra = OmegaConf.structured(HydraConf)
    hydra.job.num = 3
    hydra.overrides.task = overrides
    hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))


@pytest.fixture
def job_dir(tmp_path):
    start_job(tmp_path, ["model.optim.lr=0.001", SECRET_URL])
    yield tmp_path
    HydraConfig.instance().cfg = None


def finished_job(job_dir, objective=0.25):
    """Run the job once to the end, with its generator file written as training would."""

    def train():
        record = json.loads((job_dir / JOB_STATUS_FILE).read_text())
        assert record["status"] == JOB_RUNNING and record["pid"] == os.getpid()
        assert record["host"] == socket.gethostname() and "token=first" not in json.dumps(record)
        run_dir = job_dir / SWEEP_JOB_RUN_DIR
        run_dir.mkdir(exist_ok=True)
        (run_dir / GENERATOR_FILE).write_bytes(b"weights")
        return {"run_id": "abc", "objective": {"metric": "kid_mean", "value": objective}}

    return record_job(train)


def test_a_finished_job_is_kept_with_its_result(job_dir):
    assert finished_job(job_dir)["run_id"] == "abc"
    assert json.loads((job_dir / JOB_STATUS_FILE).read_text())["status"] == JOB_OK
    start_job(job_dir, [SECRET_URL, "model.optim.lr=0.001"])  # the same job, overrides reordered
    kept = record_job(lambda: pytest.fail("a finished job ran again"))
    assert kept == {"run_id": "abc", "objective": {"metric": "kid_mean", "value": 0.25}}


def test_a_job_whose_overrides_differ_only_behind_the_redaction_runs_again(job_dir):
    finished_job(job_dir)
    start_job(job_dir, ["model.optim.lr=0.001", SECRET_URL.replace("first", "second")])
    assert finished_job(job_dir, objective=0.5)["objective"]["value"] == 0.5


def test_a_finished_job_without_its_generator_file_runs_again(job_dir):
    finished_job(job_dir)
    (job_dir / SWEEP_JOB_RUN_DIR / GENERATOR_FILE).unlink()
    assert finished_job(job_dir, objective=0.5)["objective"]["value"] == 0.5


def test_a_job_running_in_another_live_process_is_not_started_twice(job_dir):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"status": JOB_RUNNING, "pid": other.pid, "host": socket.gethostname()}
        (job_dir / JOB_STATUS_FILE).write_text(json.dumps(record))
        assert record_job(lambda: pytest.fail("started beside a live process")) is None
        assert json.loads((job_dir / JOB_STATUS_FILE).read_text()) == record, "left alone"
    finally:
        other.kill()
        other.wait()
    assert finished_job(job_dir)["run_id"] == "abc", "its process is gone: the job resumes"


def test_an_unreadable_record_does_not_stop_the_job(job_dir):
    (job_dir / JOB_STATUS_FILE).write_text("[" * 100_000)  # nested past Python's recursion limit
    assert finished_job(job_dir)["run_id"] == "abc"
