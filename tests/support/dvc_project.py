"""The project copied into a temporary git + DVC repo, with a budget small enough for tests."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from genlab import layout

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = [
    "conf",
    "pipelines",
    "src",
    "dvc.yaml",
    "params.yaml",
    ".dvc",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
]
TINY_BUDGET = {
    "conf/config.yaml": {
        "train": {"steps": 40, "sample_every_n_steps": 20, "checkpoint_every_n_steps": 20},
        "evaluate": {
            "num_samples": 200,
            "kid_subset_size": 100,
            "kid_subsets": 20,
            "bootstrap": {"rounds": 50},
            "sample_counts": [50, 100, 200],
        },
        "export": {"grid_images": 16},
    },
    "conf/metrics/classifier.yaml": {"classifier": {"epochs": 1}},
}


def deep_update(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict):
            deep_update(target.setdefault(key, {}), value)
        else:
            target[key] = value


def edit_yaml(path: Path, changes: dict) -> None:
    config = yaml.safe_load(path.read_text()) or {}
    deep_update(config, changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def project_env() -> dict[str, str]:
    """What a user's shell has: the venv's dvc on PATH, W&B offline; tests/ importable so
    configs in a test repo may point ``_target_`` at planted failures."""
    python_path = [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
        "WANDB_MODE": "offline",
        "DVC_NO_ANALYTICS": "1",
    }


def run(args: list[str], cwd: Path, check: bool = True, timeout: int = 900):
    result = subprocess.run(
        args, cwd=cwd, env=project_env(), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def git_commit(root: Path, message: str) -> None:
    identity = ["-c", "user.email=ci@genlab", "-c", "user.name=ci"]
    run(["git", *identity, "add", "-A"], root)
    run(["git", *identity, "commit", "-qm", message], root)


def make_project_repo(
    root: Path, models: list[str] | None = None, seeds: list[int] | None = None
) -> Path:
    """Copy the project into ``root`` with the tiny budget, as a git repo with one commit
    (``models`` / ``seeds``: params.yaml's pipeline.models / pipeline.seeds instead of the
    project's)."""
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            # .dvc/cache is not the project (git ignores it): a fresh repo starts with none,
            # as a clone does, so what `dvc push` sends is this repo's results only.
            skip = ("__pycache__", "tmp", "cache") if name == ".dvc" else ("__pycache__", "tmp")
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns(*skip))
        else:
            shutil.copy2(source, root / name)
    for relative, changes in TINY_BUDGET.items():
        edit_yaml(root / relative, changes)
    if models is not None:
        edit_yaml(root / "params.yaml", {"pipeline": {"models": models}})
    if seeds is not None:
        edit_yaml(root / "params.yaml", {"pipeline": {"seeds": seeds}})
    run(["git", "init", "-q"], root)
    git_commit(root, "init")
    return root


@cache
def dvc_stages() -> dict[str, dict[str, Any]]:
    """Each stage of the project's own dvc.yaml as DVC resolves it: command, deps, outputs
    (outs, metrics and plots files)."""
    from dvc.repo import Repo

    with Repo(str(PROJECT_ROOT)) as repo:
        return {
            stage.addressing: {
                "cmd": stage.cmd,
                "deps": [str(dep.def_path) for dep in stage.deps],
                "outs": {str(out.def_path) for out in stage.outs},
            }
            for stage in repo.index.stages
        }


def stage_command(address: str) -> tuple[Path, dict[str, Any]]:
    """(script, composed config) of a stage's command, as its script would compose it."""
    from omegaconf import OmegaConf

    from ..conftest import compose_config_dir

    words = shlex.split(dvc_stages()[address]["cmd"])
    overrides = [word for word in words[2:] if "=" in word]
    config = OmegaConf.to_container(compose_config_dir(*overrides), resolve=True)
    return Path(words[1]), config


@cache
def pipeline_seed() -> int:
    """The seed a test repo runs when it names none: the first of params.yaml's pipeline.seeds."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    return int(params["pipeline"]["seeds"][0])


@dataclass(frozen=True)
class RunFiles:
    """Where the pipeline keeps one (model, seed) run, as conf/paths.yaml composes it (relative
    to the project, under ``root`` when given), and its DVC stage instances: tests spell no
    run folder, metrics file or stage name, so renaming them needs no test edit."""

    model: str
    seed: int
    name: str  # layout.run_name(model, seed)
    run: layout.RunLayout  # paths.run_dir
    metrics: Path  # layout.metrics_file(paths.metrics_dir, name)
    nearest_training: Path
    export: Path  # paths.export_dir

    def stage(self, stage: str) -> str:
        """dvc.yaml's instance of ``stage`` (train, evaluate, export) for this run: DVC names
        a matrix instance by its values (model, seed), joined with '-'."""
        return layout.stage_instance(stage, self.model, self.seed)


@cache
def _composed_paths(model: str, seed: int) -> dict[str, str]:
    from omegaconf import OmegaConf

    from ..conftest import compose_config_dir

    # model.name alone decides the paths: a model the project's conf/ lacks composes too
    cfg = compose_config_dir(f"model.name={model}", f"seed={seed}")
    return OmegaConf.to_container(cfg.paths, resolve=True)


def run_files(model: str, seed: int | None = None, root: Path | str = "") -> RunFiles:
    """The files of the run of ``model`` trained from ``seed`` (default: pipeline_seed())."""
    seed = pipeline_seed() if seed is None else seed
    paths = _composed_paths(model, seed)
    base = Path(root)
    name = paths["run_name"]
    return RunFiles(
        model=model,
        seed=seed,
        name=name,
        run=layout.RunLayout.at(base / paths["run_dir"]),
        metrics=layout.metrics_file(base / paths["metrics_dir"], name),
        nearest_training=layout.nearest_training_image(base / paths["metrics_dir"], name),
        export=base / paths["export_dir"],
    )
