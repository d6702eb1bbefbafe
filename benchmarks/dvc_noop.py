"""How long `dvc repro` takes when nothing changed (the cost of asking DVC on every run).

Run: `python benchmarks/dvc_noop.py` after a complete `dvc repro`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, machine, table

REPEATS = 5


def main() -> None:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    status = subprocess.run(
        ["dvc", "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if status.returncode != 0 or status.stdout.strip() not in ("{}", ""):
        raise SystemExit("the pipeline is not up to date: run `dvc repro` first, then measure")
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = subprocess.run(["dvc", "repro"], cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if "Running stage" in result.stdout:
            raise SystemExit(f"`dvc repro` ran a stage, this is not a no-op:\n{result.stdout}")
    print(f"Machine: {machine()}\n")
    print(
        table(
            ["command", "median s", "min s", "max s"],
            [
                [
                    "dvc repro (nothing changed)",
                    f"{statistics.median(times):.2f}",
                    f"{min(times):.2f}",
                    f"{max(times):.2f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
