"""Shared by the benchmark scripts: the project's config, the machine, a markdown table."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import genlab  # noqa: E402,F401  (torchvision CPU shim before anything imports torchvision)


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    python = platform.python_version()
    text = f"{os.cpu_count()} CPU cores ({cpu}), Python {python}, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU: {torch.cuda.get_device_name(0)}"
    return text


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def data_dir(path: Path | None = None) -> Path:
    """A fetched dataset: the given folder, or the default one `dvc repro fetch` writes."""
    path = path or ROOT / "data" / "digits"
    if not (path / "meta.json").is_file():
        sys.exit(f"{path} not found: run `dvc repro fetch` first (or pass a fetched folder)")
    return path
