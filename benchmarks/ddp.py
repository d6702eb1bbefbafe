"""DDP with 2 CPU processes against 1 process: images per second of the whole job.

Run: `python benchmarks/ddp.py` (~2 min). Each DDP process takes the same per-device batch, so
the global batch doubles; on a machine with as many cores as processes the processes compete
for them, which is what this measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, data_dir, machine, table


def train(tmp: Path, trainer: list[str], steps: int) -> dict:
    command = [
        sys.executable,
        str(ROOT / "pipelines/train.py"),
        f"data.dir={data_dir()}",
        f"paths.run_dir={tmp / 'run'}",
        f"hydra.run.dir={tmp / 'hydra'}",
        "logger=csv",
        f"train.steps={steps}",
        *trainer,
    ]
    result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=os.environ)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads((tmp / "run/train_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--model", default="dcgan")
    args = parser.parse_args()
    setups = {
        "1 process": ["trainer=cpu"],
        "DDP, 2 processes (gloo)": ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"],
    }
    rows = []
    for name, trainer in setups.items():
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(Path(tmp), [f"model={args.model}", *trainer], args.steps)
        rows.append(
            [
                name,
                summary["world_size"],
                summary["batch_size_global"],
                summary["images_per_s"],
                summary["wall_time_s"],
            ]
        )
    print(f"Machine: {machine()}")
    print(f"{args.model}, {args.steps} iterations per process\n")
    print(table(["setup", "processes", "global batch", "images/s", "fit wall s"], rows))


if __name__ == "__main__":
    main()
