"""Wall time of one 4-job training sweep with Hydra's basic launcher (jobs one after another)
against the joblib launcher (2 jobs at a time) and submitit_local.

Parallel jobs get the cores split between them (``train.speed.threads``: joblib's ``n_jobs``,
submitit's ``cpus_per_task``), so they do not oversubscribe the CPU.

Two sweeps: ``--sweep models`` is the issue's own command (``model=dcgan,vae`` x two learning
rates, the default W&B logger, offline); ``--sweep lr`` is four DCGAN learning rates with the CSV
logger, training only.

Run: `python benchmarks/sweep_launchers.py --sweep models --steps 500 --ceiling`
(~8 min on 2 cores; needs `dvc repro fetch`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


SWEEPS = {
    "models": {
        "what": "model=dcgan,vae x model.optim.lr=1e-4,2e-4, W&B logger (offline)",
        "overrides": ["model=dcgan,vae", "model.optim.lr=1e-4,2e-4"],
    },
    "lr": {
        "what": "4 DCGAN learning rates, logger=csv",
        "overrides": ["model.optim.lr=1e-4,2e-4,5e-4,1e-3", "logger=csv"],
    },
}


def sweep_seconds(launcher: list[str], sweep: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            str(ROOT / "pipelines/train.py"),
            "-m",
            *launcher,
            *SWEEPS[sweep]["overrides"],
            f"data.dir={data_dir()}",
            f"hydra.sweep.dir={tmp}/multirun",
            f"train.steps={steps}",
        ]
        env = {**os.environ, "WANDB_MODE": "offline"}
        started = time.perf_counter()
        result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return elapsed


def _training_command(run_dir: str, steps: int, threads: int) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "pipelines/train.py"),
        f"data.dir={data_dir()}",
        f"paths.run_dir={run_dir}/run",
        f"hydra.run.dir={run_dir}/hydra",
        "logger=csv",
        f"train.steps={steps}",
        f"train.speed.threads={threads}",
    ]


def parallel_ceiling(steps: int) -> tuple[float, float]:
    """DCGAN images/s of one 2-thread training, and of two 1-thread trainings at once (summed).

    Their ratio bounds what any launcher can gain on 2 cores: start-up aside, a sweep is a sum of
    trainings.
    """
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(_training_command(f"{tmp}/alone", steps, 2), check=True, capture_output=True)
        pair = [
            subprocess.Popen(
                _training_command(f"{tmp}/pair{index}", steps, 1),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for index in range(2)
        ]
        if any(process.wait() != 0 for process in pair):
            raise SystemExit("a parallel training failed")

        def images_per_s(name: str) -> float:
            summary = Path(tmp, name, "run", "train_summary.json").read_text()
            return float(json.loads(summary)["images_per_s"])

        return images_per_s("alone"), images_per_s("pair0") + images_per_s("pair1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep", choices=list(SWEEPS), default="models")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--only", nargs="+", choices=list(LAUNCHERS), help="launchers to time")
    parser.add_argument(
        "--ceiling", action="store_true", help="also measure the most 2 jobs at once can gain"
    )
    args = parser.parse_args()
    chosen = ["basic", *(name for name in args.only or LAUNCHERS if name != "basic")]
    times = {name: sweep_seconds(LAUNCHERS[name], args.sweep, args.steps) for name in chosen}
    basic = times["basic"]
    print(f"Machine: {machine()}")
    print(f"4 jobs ({SWEEPS[args.sweep]['what']}), {args.steps} iterations each\n")
    print(
        table(
            ["launcher", "sweep wall s", "vs basic"],
            [
                [name, f"{seconds:.1f}", f"{seconds / basic:.2f}x"]
                for name, seconds in times.items()
            ],
        )
    )
    if args.ceiling:
        alone, pair = parallel_ceiling(args.steps)
        print(
            f"\nDCGAN training, {args.steps} iterations: one job with 2 threads {alone:.0f} img/s; "
            f"two 1-thread jobs at once {pair:.0f} img/s together -> at best "
            f"{alone / pair:.2f}x the basic launcher's training time"
        )


if __name__ == "__main__":
    main()
