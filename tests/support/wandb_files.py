"""Read what an offline W&B run recorded, from its ``run-<id>.wandb`` file.

The file is a LevelDB-style log of ``wandb_internal_pb2.Record`` protobufs (what `wandb sync`
uploads). The SDK no longer ships a Python reader, so the tests carry this small one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    ident, _, _ = FILE_HEADER.unpack_from(data)
    assert ident == b":W&B", "not a W&B run file"
    offset, pending = FILE_HEADER.size, b""
    while offset + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < RECORD_HEADER.size:
            offset += left_in_block  # block trailer padding
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, offset)
        offset += RECORD_HEADER.size
        chunk, offset = data[offset : offset + length], offset + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        elif kind == 0 and length == 0:
            break


def _records(run_file: Path, record_type: str):
    """The records of one type (``history``, ``artifact``, ...) in the order they were logged."""
    from wandb.proto import wandb_internal_pb2

    for payload in _payloads(Path(run_file).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == record_type:
            yield getattr(record, record_type)


def history_rows(run_file: Path) -> list[dict[str, Any]]:
    """Every ``wandb.log`` row recorded in the file, as {key: value}."""
    return [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in row.item}
        for row in _records(run_file, "history")
    ]


def artifacts(run_file: Path) -> list[dict[str, Any]]:
    """Every artifact the run logged: name, type, aliases, metadata and the files it holds."""
    return [
        {
            "name": artifact.name,
            "type": artifact.type,
            "aliases": list(artifact.aliases),
            "metadata": json.loads(artifact.metadata or "{}"),
            "files": sorted(entry.path for entry in artifact.manifest.contents),
        }
        for artifact in _records(run_file, "artifact")
    ]


def run_records(run_file: Path) -> list[dict[str, Any]]:
    """The run as ``wandb.init`` declared it (id, name, group, job type), once per start."""
    return [
        {
            "id": run.run_id,
            "name": run.display_name,
            "group": run.run_group,
            "job_type": run.job_type,
        }
        for run in _records(run_file, "run")
    ]
