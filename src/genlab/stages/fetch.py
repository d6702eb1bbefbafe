"""fetch: build the configured dataset into the one on-disk format (atomically)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from genlab.checks import printable
from genlab.data.store import read_meta, write_dataset
from genlab.layout import DATA_DUPLICATES_FILE
from genlab.stages.entry import stage_main

INSTANTIATES = ("data",)  # the data source (genlab.code_deps follows its _target_)


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_fetch, cfg, INSTANTIATES)


def run_fetch(cfg: DictConfig) -> dict[str, Any]:
    source = instantiate(cfg.data.source)
    splits = source.load()
    extra_files = source.extra_files() if hasattr(source, "extra_files") else None
    write_dataset(cfg.data.dir, splits, source.meta(), extra_files)
    meta = read_meta(cfg.data.dir)
    print(
        f"fetch: wrote {cfg.data.dir} ({meta['counts']}, {meta['channels']}x"
        f"{meta['image_size']}x{meta['image_size']})"
    )
    for skipped in meta.get("skipped", []):  # names and errors from someone else's files
        entry = printable(f"{skipped['file']}: {skipped['error']}")
        print(f"fetch: skipped unreadable {entry}")
    duplicates = meta.get("duplicates")
    if duplicates:
        print(
            f"fetch: {duplicates['exact_duplicates']} exact duplicate(s), "
            f"{duplicates['near_duplicate_pairs']} near-duplicate pair(s); see "
            f"{cfg.data.dir}/{DATA_DUPLICATES_FILE}"
        )
    return meta
