"""Results shared through a real DVC remote, as a second machine gets them: `dvc repro` and
`dvc push` to a local-folder remote, a fresh `git clone` and `dvc pull`, then nothing re-runs,
the pulled export generates images, and an experiment travels with `dvc exp push` / `dvc exp
pull` through the same (bare) git remote. Prints what was transferred and how long it took."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ..support.dvc_project import git_commit, make_project_repo, run, run_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "dcgan"
RUN = run_files(MODEL)  # its files relative to a project: runs/..., metrics/..., exports/...
EXPERIMENT = "lr-5e-4"


def _timed(args: list[str], cwd: Path):
    start = time.monotonic()
    result = run(args, cwd)
    return result, time.monotonic() - start


def _files_and_bytes(folder: Path) -> tuple[int, int]:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def _pushed(output: str) -> int:
    match = re.search(r"(\d+) files? pushed", output)
    assert match, output
    return int(match.group(1))


def _experiment_metrics(root: Path) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its metrics files, as DVC reports them."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root).stdout)
    return {
        revision["name"]: revision["data"]["metrics"]
        for baseline in shown
        for experiment in baseline.get("experiments") or []
        for revision in experiment["revs"]
        if revision.get("name")
    }


def test_push_clone_pull_reruns_nothing_and_carries_experiments(tmp_path):
    root = make_project_repo(tmp_path / "repo", models=[MODEL])
    storage = tmp_path / "dvc-storage"
    git_remote = tmp_path / "remote.git"
    run(["git", "init", "-q", "--bare", str(git_remote)], tmp_path)
    run(["dvc", "remote", "add", "-d", "storage", str(storage)], root)
    run(["git", "remote", "add", "origin", str(git_remote)], root)

    _, repro_s = _timed(["dvc", "repro"], root)
    git_commit(root, "default run")
    pushed, push_s = _timed(["dvc", "push"], root)
    run(["git", "push", "-q", "origin", "HEAD:main"], root)
    files, size = _files_and_bytes(storage)
    assert _pushed(pushed.stdout) == files > 0

    clone = tmp_path / "clone"
    start = time.monotonic()
    run(["git", "clone", "-q", "--branch", "main", str(git_remote), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    clone_pull_s = time.monotonic() - start

    # Everything the pipeline's stages depend on or produce came back: nothing is out of date.
    assert json.loads(run(["dvc", "status", "--json"], clone).stdout) == {}
    stages = run(["dvc", "stage", "list", "--name-only"], clone).stdout.split()
    assert RUN.stage("train") in stages and "report" in stages
    noop, noop_s = _timed(["dvc", "repro"], clone)
    assert "Running stage" not in noop.stdout, noop.stdout
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in noop.stdout, (stage, noop.stdout)
    # The checkpoint folder is the training machine's crash-recovery area: never pushed.
    assert (root / RUN.run.last_checkpoint).is_file()
    assert not (clone / RUN.run.checkpoints).exists()

    images = tmp_path / "generated"
    run(
        [
            "genlab",
            "generate",
            str(clone / RUN.export / "generator.onnx"),
            "--seeds",
            "0-3",
            "--out",
            str(images),
        ],
        clone,
    )
    assert len(list(images.glob("*.png"))) == 4

    # An experiment of the first machine reaches the clone with its metrics.
    lr = f"conf/model/{MODEL}.yaml:optim.lr=5e-4"
    run(["dvc", "exp", "run", "-n", EXPERIMENT, "-S", lr], root)
    before = _files_and_bytes(storage)
    exp_pushed, exp_push_s = _timed(["dvc", "exp", "push", "origin", EXPERIMENT], root)
    after = _files_and_bytes(storage)
    assert after[0] > before[0], "exp push sent the experiment's outputs to the DVC remote"
    _, exp_pull_s = _timed(["dvc", "exp", "pull", "origin", EXPERIMENT], clone)
    original = _experiment_metrics(root)[EXPERIMENT]
    pulled = _experiment_metrics(clone)
    assert EXPERIMENT in pulled, pulled.keys()
    scores = pulled[EXPERIMENT][str(RUN.metrics)]["data"]
    for key in ("fid", "kid_mean", "isc_mean"):
        assert isinstance(scores[key], float), key
    assert pulled[EXPERIMENT] == original
    run(["dvc", "exp", "apply", EXPERIMENT], clone)
    run(["dvc", "checkout"], clone)
    assert json.loads((clone / RUN.metrics).read_text())["fid"] == scores["fid"]

    print(
        f"\n[dvc remote round trip, {MODEL}] dvc repro {repro_s:.1f} s; "
        f"dvc push {push_s:.1f} s: {files} files, {size / 1e6:.2f} MB; "
        f"git clone + dvc pull {clone_pull_s:.1f} s; no-op dvc repro {noop_s:.1f} s; "
        f"dvc exp push {exp_push_s:.1f} s: {after[0] - before[0]} files, "
        f"{(after[1] - before[1]) / 1e6:.2f} MB; dvc exp pull {exp_pull_s:.1f} s"
    )
