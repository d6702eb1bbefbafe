"""The layers point down and no package has an import cycle (import-linter's contracts in
pyproject.toml), and each must fail on a planted violation. Function-level imports count: grimp
reads every import statement, so an import moved into a function cannot hide a cycle."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAYERS = "layers point down"
ACYCLIC = "no import cycles"


def lint_imports(source_root: Path, config: Path) -> subprocess.CompletedProcess:
    """import-linter on the genlab package found under ``source_root``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=source_root,
        env={**os.environ, "PYTHONPATH": str(source_root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def contract_lines(output: str) -> dict[str, str]:
    """'KEPT' / 'BROKEN' per contract, from lint-imports' summary."""
    status = {}
    joined = output.replace("\n", " ")
    for name in (LAYERS, ACYCLIC):
        after = joined.split(name, 1)[1] if name in joined else ""
        status[name] = next((w for w in after.split() if w in ("KEPT", "BROKEN")), "missing")
    return status


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """genlab's sources in a scratch folder, to plant violations in."""
    shutil.copytree(
        PROJECT_ROOT / "src/genlab",
        tmp_path / "genlab",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


def plant(package_root: Path, module: str, statement: str) -> None:
    """Add ``statement`` inside a new function of ``module``, the way a hidden import hides."""
    path = package_root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {statement}\n")


def test_the_project_keeps_its_import_contracts():
    result = lint_imports(PROJECT_ROOT / "src", PROJECT_ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert contract_lines(result.stdout) == {LAYERS: "KEPT", ACYCLIC: "KEPT"}


def test_an_upward_import_breaks_the_layers(package_copy):
    plant(package_copy, "genlab.models.base", "from genlab.stages import train")
    result = lint_imports(package_copy, PROJECT_ROOT / "pyproject.toml")
    assert result.returncode != 0
    assert contract_lines(result.stdout)[LAYERS] == "BROKEN", result.stdout[-3000:]
    assert "genlab.models.base -> genlab.stages.train" in result.stdout


def test_a_cycle_hidden_in_a_function_breaks_the_acyclic_contract(package_copy):
    # wandb_setup imports identity at module level; identity importing it back is a cycle
    plant(package_copy, "genlab.tracking.identity", "from genlab.tracking import wandb_setup")
    result = lint_imports(package_copy, PROJECT_ROOT / "pyproject.toml")
    assert result.returncode != 0
    assert contract_lines(result.stdout) == {LAYERS: "KEPT", ACYCLIC: "BROKEN"}, result.stdout


def genlab_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "genlab"}


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (PROJECT_ROOT / "pipelines").glob("*.py"))
)
def test_a_stage_script_imports_only_its_stage(script):
    """So that the stage module's import closure is the script's (genlab.code_deps)."""
    stage = script.removesuffix(".py")
    assert genlab_imports(PROJECT_ROOT / "pipelines" / script) == {
        "genlab",
        f"genlab.stages.{stage}",
    }
