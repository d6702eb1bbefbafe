"""Wall time of one 4-job training sweep with Hydra's basic launcher (jobs one after another)
against the joblib launcher (2 jobs at a time) and submitit_local.

Parallel jobs get the cores split between them (``train.speed.threads``: joblib's ``n_jobs``,
submitit's ``cpus_per_task``), so they do not oversubscribe the CPU.

Run: `python benchmarks/sweep_launchers.py` (~10 min on 2 cores; needs `dvc repro fetch`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from _common import ROOT, data_dir, machine, table

LAUNCHERS = {
    "basic": [],
    "joblib (n_jobs=2)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
    "submitit_local (cpus_per_task=1)": [
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
    ],
}


def sweep_seconds(launcher: list[str], steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            str(ROOT / "pipelines/train.py"),
            "-m",
            *launcher,
            "model.optim.lr=1e-4,2e-4,5e-4,1e-3",
            f"data.dir={data_dir()}",
            f"hydra.sweep.dir={tmp}/multirun",
            "logger=csv",
            f"train.steps={steps}",
            "train.sample_every_n_steps=1000",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--only", nargs="+", choices=list(LAUNCHERS), help="launchers to time")
    args = parser.parse_args()
    chosen = ["basic", *(name for name in args.only or LAUNCHERS if name != "basic")]
    times = {name: sweep_seconds(LAUNCHERS[name], args.steps) for name in chosen}
    basic = times["basic"]
    print(f"Machine: {machine()}")
    print(f"4 DCGAN jobs (lr sweep), {args.steps} iterations each, logger=csv\n")
    print(
        table(
            ["launcher", "sweep wall s", "vs basic"],
            [
                [name, f"{seconds:.1f}", f"{seconds / basic:.2f}x"]
                for name, seconds in times.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
