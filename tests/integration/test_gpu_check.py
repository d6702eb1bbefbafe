"""benchmarks/gpu_check.sh: the dry run on this CPU runs every step of the GPU check for real
(with the packages the GPU machine lacks, and the wheel folder does not bring, blocked from
import) and writes one table; without --dry-run it refuses a missing or wrong wheel folder
before doing anything."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from ..conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import gpu_check  # noqa: E402  (benchmarks/ is no package)


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dry_run_runs_every_step_and_writes_the_table(tmp_path):
    out = tmp_path / "out"
    result = run_script(str(out), "--dry-run")
    record = json.loads((out / "gpu_check.json").read_text())
    table = (out / "gpu_check.md").read_text()
    rows = {row["step"]: row for row in record["steps"]}
    expected = [step.name for step in gpu_check.build_steps(tmp_path / "work", dry_run=True)]
    assert list(rows) == expected
    failed = {name: row for name, row in rows.items() if row["status"] != "ok"}
    assert not failed, f"{failed}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert result.returncode == 0
    for name, row in rows.items():
        assert row["wall_s"] > 0, name
        assert f"| {name} | ok |" in table
    trainings = [
        f"{model} {variant}" for model in gpu_check.MODELS for variant in ("fp32", "bf16-mixed")
    ]
    trainings.append("stylegan bf16-mixed compile")  # the dry run compiles the one with R1
    for name in trainings:
        assert rows[name]["figures"]["images_per_s"] > 0
        assert rows[name]["figures"]["steps"] == 3
    ddp = rows["dcgan ddp 1 device"]["figures"]
    assert (ddp["world_size"], ddp["backend"], ddp["replica_max_abs_diff"]) == (1, "gloo", 0.0)
    assert math.isfinite(rows["evaluate dcgan"]["figures"]["fid"])
    assert 0 < rows["train classifier"]["figures"]["test_accuracy"] <= 1
    for precision in ("32-true", "bf16-mixed"):
        figures = rows[f"throughput {precision}"]["figures"]
        assert figures["dcgan_plain_img_s"] > 0 and figures["stylegan_ratio"] > 0
    assert rows["environment"]["figures"]["cuda"] is False
    assert (out / "gpu_check_logs.tar.gz").stat().st_size > 0


def test_the_dry_run_blocks_what_the_gpu_machine_lacks():
    """What the dry run's import closure proves rests on the blocker: wandb and dvc (absent
    there, not carried) are blocked; the carried and preinstalled packages are not."""
    blocked = set(gpu_check.blocked_modules())
    assert {"wandb", "dvc"} <= blocked
    assert not blocked & {"hydra", "omegaconf", "torch", "pytorch_lightning", "cv2", "genlab"}


def test_refuses_a_missing_wheel_folder(tmp_path):
    missing = tmp_path / "no-wheels"
    result = run_script(str(tmp_path / "out"), GENLAB_GPU_WHEELS=str(missing))
    assert result.returncode == 2
    assert f"wheel folder {missing} not found" in result.stderr
    assert "make gpu-wheels" in result.stderr
    assert not (tmp_path / "out").exists()


def test_refuses_an_incomplete_or_heavy_wheel_folder(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "hydra_core-1.3.8-py3-none-any.whl").write_bytes(b"PK")
    (wheels / "torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl").write_bytes(b"PK")
    result = run_script(str(tmp_path / "out"), GENLAB_GPU_WHEELS=str(wheels))
    assert result.returncode == 2
    assert "no wheel of omegaconf" in result.stderr
    assert "no wheel of hydra-core" not in result.stderr
    assert "torch must not travel" in result.stderr


def test_refuses_bad_arguments(tmp_path):
    result = run_script(str(tmp_path), "--fast")
    assert result.returncode == 2
    assert "usage: benchmarks/gpu_check.sh OUT_DIR [--dry-run]" in result.stderr


def test_a_hung_step_is_stopped_at_its_timeout_and_the_next_one_runs(tmp_path):
    """A step that outlives its timeout is killed with its children (DDP and compile start
    some) and recorded; a failing step is recorded with its last line; the run goes on."""
    hang = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); time.sleep(60)"
    )
    steps = [
        gpu_check.Step("hangs", [sys.executable, "-c", hang], 60),
        gpu_check.Step("fails", [sys.executable, "-c", "raise SystemExit('broken here')"], 60),
        gpu_check.Step("works", [sys.executable, "-c", "print(1)"], 60, lambda log: {"x": 1}),
    ]
    started = time.perf_counter()
    rows = [gpu_check.run_step(step, dict(os.environ), tmp_path, 2) for step in steps]
    assert time.perf_counter() - started < 30
    assert [row["status"] for row in rows] == ["timeout (2 s)", "failed (exit 1)", "ok"]
    assert rows[1]["figures"] == {"last_line": "broken here"}
    assert rows[2]["figures"] == {"x": 1}
    table = gpu_check.render_table(rows, "# t")
    assert "| hangs | timeout (2 s) |" in table and "| works | ok |" in table and "x=1" in table
