"""Small hostile-data builders shared by the folder-source tests: a FolderSource with the caps
from their one home (conf/data/folder.yaml), a PNG's bytes, a tar member from bytes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from omegaconf import OmegaConf
from PIL import Image

from genlab.data.sources.folder import FolderSource

from .dvc_project import PROJECT_ROOT

#: the caps FolderSource requires, from their one home: conf/data/folder.yaml
FOLDER_CAPS = {
    key: value
    for key, value in OmegaConf.load(PROJECT_ROOT / "conf/data/folder.yaml").source.items()
    if key.startswith("max_") or key == "download_deadline_s"
}


def source(path, tmp_path: Path, **overrides) -> FolderSource:
    """A small FolderSource whose archives and downloads go under ``tmp_path``."""
    settings = dict(
        image_size=16, channels=3, seed=0, download_dir=str(tmp_path / "downloads"), **FOLDER_CAPS
    )
    return FolderSource(str(path) if path else "", **{**settings, **overrides})


def png_bytes(colour=(200, 30, 30), size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
