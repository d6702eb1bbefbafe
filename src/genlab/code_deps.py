"""Which of genlab's own source files a stage runs: the one answer to "what code does it use".

A stage's code is the import closure of ``genlab.stages.<stage>`` (every ``import`` statement,
at module level or inside a function, followed through genlab's own modules and their parent
packages), plus the modules the stage builds from its config's ``_target_`` nodes in the
sections it instantiates (``INSTANTIATES`` in the stage module). dvc.yaml's deps must cover it
(tests/unit/test_code_deps.py checks that) and the train stage's resume fingerprint hashes it, so
both give the same answer: an edit to the report module neither re-runs training nor throws
away a killed run's checkpoints, an edit to the datamodule does both.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = "genlab"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent  # paths are reported relative to this (src/)


def module_file(module: str) -> Path | None:
    """The source file of a genlab module or package; None for anything else."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def module_of(path: Path) -> str:
    relative = path.resolve().relative_to(SOURCE_ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _imports_in(path: Path) -> frozenset[str]:
    """Every genlab module named by an import statement anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_of(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from genlab.x import y` imports genlab.x.y when y is a module
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(m for m in found if m == PACKAGE or m.startswith(PACKAGE + "."))


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(modules: Iterable[str]) -> list[Path]:
    """The files of ``modules``, their parent packages and everything they import, sorted."""
    seen: set[Path] = set()
    pending = [parent for module in modules for parent in _with_parents(module)]
    while pending:
        path = module_file(pending.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        for imported in _imports_in(path):
            pending.extend(_with_parents(imported))
    return sorted(seen)


def config_targets(node: Any) -> set[str]:
    """The genlab modules named by the ``_target_`` values anywhere in a (resolved) config."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if isinstance(target, str) and target.startswith(PACKAGE + "."):
            parts = target.split(".")
            # `genlab.models.gan.GANModule` -> the longest prefix that is a module
            module = next(
                (
                    ".".join(parts[:n])
                    for n in range(len(parts), 0, -1)
                    if module_file(".".join(parts[:n]))
                ),
                None,
            )
            if module:
                found.add(module)
        for value in node.values():
            found |= config_targets(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found |= config_targets(value)
    return found


def stage_modules(
    stage: str,
    config: Mapping[str, Any] | None = None,
    sections: Iterable[str] | None = None,
) -> set[str]:
    """The modules a stage starts from: its own, plus the targets of the config sections it
    instantiates (the stage module's ``INSTANTIATES``, or only ``sections`` of them)."""
    root = f"{PACKAGE}.stages.{stage}"
    modules = {root}
    if config is not None:
        for section in sections if sections is not None else instantiated_sections(stage):
            modules |= config_targets(config.get(section))
    return modules


def stage_code(
    stage: str,
    config: Mapping[str, Any] | None = None,
    sections: Iterable[str] | None = None,
) -> list[Path]:
    """The genlab source files the stage runs (see the module docstring)."""
    return import_closure(stage_modules(stage, config, sections))


def package_modules(package: str) -> list[str]:
    """Every module of a genlab package, whether or not anything imports it statically."""
    directory = module_file(package)
    if directory is None or directory.name != "__init__.py":
        raise ValueError(f"{package} is not a genlab package")
    return sorted(module_of(path) for path in directory.parent.rglob("*.py"))


def instantiated_sections(stage: str) -> tuple[str, ...]:
    """The stage module's ``INSTANTIATES``, read without importing it."""
    path = module_file(f"{PACKAGE}.stages.{stage}")
    if path is None:
        raise ValueError(f"no stage module genlab.stages.{stage}")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "INSTANTIATES" for t in targets):
                return tuple(ast.literal_eval(node.value))
    return ()


def code_hash(files: Iterable[Path]) -> str:
    """A hash of the files' package-relative paths and contents."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.resolve().relative_to(SOURCE_ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
