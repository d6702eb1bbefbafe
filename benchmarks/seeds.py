"""The default models over several seeds: a fresh clone of this commit, `dvc repro` with
`pipeline.seeds` set, then each model's FID / KID mean ± std over the seeds, the health
warnings of the log and the wall time (what docs/benchmarks.md records).

Run: `python benchmarks/seeds.py [--seeds 0 1 2] [--workspace DIR]` (about 3x the default
`dvc repro`; DIR is kept, so `dvc repro` there again resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, machine, table


def run(command: list[str], cwd: Path, log: Path | None = None) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "WANDB_MODE": "offline",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{output[-3000:]}")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="genlab-seeds-")) / "genlab"
    if not workspace.exists():
        run(["git", "clone", "-q", str(ROOT), str(workspace)], ROOT)
    params_path = workspace / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["pipeline"]["seeds"] = args.seeds
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.perf_counter()
    output = run(["dvc", "repro"], workspace, log=workspace / "seeds_repro.log")
    wall = time.perf_counter() - started
    warnings = [line for line in output.splitlines() if "GAN health" in line]
    leaderboard = json.loads((workspace / "leaderboard" / "leaderboard.json").read_text())
    rows = []
    for model in leaderboard["ranking"]:
        seeds = leaderboard["models"][model]["over_seeds"]
        cells = [model, seeds["n"]]
        for key in ("fid", "kid_mean"):
            stats = seeds[key]
            std = f" ± {stats['std']:.4g}" if stats.get("std") is not None else ""
            cells.append(f"{stats['mean']:.4g}{std} [{stats['min']:.4g}, {stats['max']:.4g}]")
        floor = leaderboard.get("floor", {}).get("fid")
        cells.append(f"{seeds['fid']['max'] / floor:.1f}x" if floor else "n/a")
        rows.append(cells)
    train_times = {
        path.parent.name: json.loads(path.read_text())["wall_time_s"]
        for path in sorted((workspace / "runs").glob("*/train_summary.json"))
    }
    print(f"Machine: {machine()}; seeds {args.seeds}; workspace {workspace}\n")
    print(
        table(
            [
                "model",
                "n",
                "FID mean ± std [min, max]",
                "KID mean ± std [min, max]",
                "worst FID / floor",
            ],
            rows,
        )
    )
    print(f"\nfloor (real vs real) FID: {leaderboard.get('floor', {}).get('fid')}")
    print(f"health warnings in the log: {len(warnings)}")
    for line in warnings:
        print("  " + re.sub(r"\s+", " ", line)[:200])
    print(f"training wall time per run (s): {train_times}")
    print(f"`dvc repro` wall time: {wall:.0f} s")


if __name__ == "__main__":
    main()
