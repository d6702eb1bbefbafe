"""fetch: build the configured dataset into the one on-disk format (atomically)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from genlab.data.store import read_meta, write_dataset


def run_fetch(cfg: DictConfig) -> dict[str, Any]:
    source = instantiate(cfg.data.source)
    splits = source.load()
    write_dataset(cfg.data.dir, splits, source.meta())
    meta = read_meta(cfg.data.dir)
    print(
        f"fetch: wrote {cfg.data.dir} ({meta['counts']}, {meta['channels']}x"
        f"{meta['image_size']}x{meta['image_size']})"
    )
    return meta
