"""A user's own images: a folder (one subfolder per class gives labels) or a .zip / .tar.gz,
local or downloaded from a URL whose sha256 the config states.

Every file is decoded, converted to the configured mode, fitted to a square (centre crop or
pad) and resized with a named filter, all recorded in the metadata. Files that cannot be read
are reported by name and either fail the stage or are skipped and counted (``on_error``). A
manifest (file, sha256, size) and a near-duplicate report are written beside the dataset.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from rich.progress import track, wrap_file

from genlab.data.store import Split
from genlab.errors import DatasetError
from genlab.io import file_digest
from genlab.layout import DATA_DUPLICATES_FILE, DATA_MANIFEST_FILE

EXTENSIONS = {".png", ".jpg", ".jpeg"}
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
FITS = ("center_crop", "pad")
ON_ERROR = ("fail", "skip")
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")


def _choice(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


class FolderSource:
    def __init__(
        self,
        path: str,
        image_size: int,
        channels: int,
        resize_filter: str = "lanczos",
        fit: str = "center_crop",
        on_error: str = "fail",
        test_fraction: float = 0.1,
        seed: int = 0,
        near_duplicate_distance: int = 4,
        licence: str | None = None,
        url: str | None = None,
        sha256: str | None = None,
        download_dir: str = "data/_downloads",
    ):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if url and not sha256:
            raise ValueError(
                "sha256 is required with url: the expected checksum of the archive, so a changed "
                "or truncated download is caught"
            )
        self.url = url
        self.sha256 = sha256.lower() if sha256 else None
        self.path = Path(download_dir) / Path(url.split("?")[0]).name if url else Path(path)
        self.image_size = image_size
        self.channels = channels
        self.resize_filter = _choice("resize_filter", resize_filter, FILTERS)
        self.fit = _choice("fit", fit, FITS)
        self.on_error = _choice("on_error", on_error, ON_ERROR)
        self.test_fraction = test_fraction
        self.seed = seed
        self.near_duplicate_distance = near_duplicate_distance
        self.licence = licence
        self._manifest: list[dict[str, Any]] = []
        self._skipped: list[dict[str, str]] = []
        self._classes: list[str] = []
        self._duplicates: dict[str, Any] = {}

    # --- reading ---------------------------------------------------------------------------
    def _image_files(self, root: Path) -> list[Path]:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DatasetError(
                f"no PNG or JPEG images found in {self.path}; point data.source.path at a "
                f"folder (or .zip / .tar.gz) of images, optionally one subfolder per class"
            )
        return files

    def _decode(self, file: Path) -> np.ndarray:
        with Image.open(file) as image:
            image.load()
            mode = "L" if self.channels == 1 else "RGB"
            image = ImageOps.exif_transpose(image).convert(mode)
            size = (self.image_size, self.image_size)
            resample = FILTERS[self.resize_filter]
            if self.fit == "center_crop":
                image = ImageOps.fit(image, size, method=resample)
            else:
                image = ImageOps.pad(image, size, method=resample, color=0)
            array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def _read_all(self, root: Path) -> tuple[np.ndarray, np.ndarray]:
        files = self._image_files(root)
        relative = [f.relative_to(root) for f in files]
        labelled = all(len(r.parts) >= 2 for r in relative)
        self._classes = sorted({r.parts[0] for r in relative}) if labelled else []
        images, labels = [], []
        reading = track(
            zip(files, relative, strict=True),
            total=len(files),
            description=f"fetch: reading {len(files)} images",
        )
        for file, name in reading:
            try:
                array = self._decode(file)
            except Exception as error:  # PIL raises many kinds for broken files
                self._skipped.append({"file": name.as_posix(), "error": f"{error}"})
                continue
            label = self._classes.index(name.parts[0]) if labelled else -1
            images.append(array)
            labels.append(label)
            self._manifest.append(
                {
                    "file": name.as_posix(),
                    "sha256": file_digest(file),
                    "bytes": file.stat().st_size,
                    "label": label,
                }
            )
        if self._skipped and self.on_error == "fail":
            listed = "; ".join(f"{s['file']}: {s['error']}" for s in self._skipped)
            raise DatasetError(
                f"{len(self._skipped)} unreadable image(s) in {self.path}: {listed}. Fix or "
                f"remove them, or set data.source.on_error=skip to leave them out (counted)."
            )
        if len(images) < 2:
            raise DatasetError(f"only {len(images)} readable image(s) in {self.path}")
        return np.stack(images), np.asarray(labels, dtype=np.int64)

    def _extracted(self, scratch: Path) -> Path:
        if self.path.is_dir():
            return self.path
        if not self.path.is_file():
            raise DatasetError(
                f"data.source.path={self.path} does not exist: give a folder of images or a "
                f".zip / .tar.gz of them"
            )
        target = scratch
        name = self.path.name.lower()
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(self.path) as archive:
                    archive.extractall(target)
            elif name.endswith(ARCHIVES):
                with tarfile.open(self.path) as archive:
                    archive.extractall(target, filter="data")
            else:
                raise DatasetError(f"{self.path}: expected a folder, .zip or .tar.gz")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
            raise DatasetError(f"{self.path} is not a readable archive ({error})") from error
        return target

    def _download(self) -> None:
        """Fetch ``url`` into ``path`` unless a file with the expected checksum is there."""
        import urllib.request

        if self.path.is_file() and file_digest(self.path) == self.sha256:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response:
                size = int(response.headers.get("Content-Length") or 0)
                description = f"fetch: downloading {self.path.name}"
                # Without a Content-Length there is no total to draw a bar against.
                with wrap_file(response, size, description=description, disable=not size) as body:
                    with open(partial, "wb") as out:
                        while block := body.read(1 << 20):
                            out.write(block)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise DatasetError(f"could not download {self.url}: {error}") from error
        got = file_digest(partial)
        if got != self.sha256:
            partial.unlink()
            raise DatasetError(
                f"{self.url} has sha256 {got}, expected {self.sha256} (data.source.sha256): the "
                f"file changed upstream or the download was cut; nothing was kept"
            )
        partial.replace(self.path)

    # --- the source interface --------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        from genlab.data.duplicates import find_duplicates

        if self.url:
            self._download()
        with tempfile.TemporaryDirectory() as scratch:
            images, labels = self._read_all(self._extracted(Path(scratch)))
        names = [entry["file"] for entry in self._manifest]
        self._duplicates = find_duplicates(images, names, self.near_duplicate_distance)
        order = np.random.default_rng(self.seed).permutation(len(labels))
        test_count = max(1, int(round(len(labels) * self.test_fraction)))
        test, train = order[:test_count], order[test_count:]
        for position, index in enumerate(order):
            self._manifest[index]["split"] = "test" if position < test_count else "train"
        return {
            "train": Split(images[np.sort(train)], labels[np.sort(train)]),
            "test": Split(images[np.sort(test)], labels[np.sort(test)]),
        }

    def meta(self) -> dict[str, Any]:
        source_digest = hashlib.sha256()
        for entry in self._manifest:
            source_digest.update(f"{entry['file']}\0{entry['sha256']}\n".encode())
        return {
            "name": "folder",
            "source": f"{self.url} (sha256 {self.sha256})" if self.url else str(self.path),
            "licence": self.licence or "not given: set data.source.licence",
            "classes": self._classes,
            "labelled": bool(self._classes),
            "resize_filter": f"{self.resize_filter} (PIL), fit={self.fit}",
            "mode": "L" if self.channels == 1 else "RGB",
            "split": {"test_fraction": self.test_fraction, "seed": self.seed, "stratified": False},
            "source_sha256": source_digest.hexdigest(),
            "skipped": self._skipped,
            "duplicates": {k: v for k, v in self._duplicates.items() if k != "pairs"},
        }

    def extra_files(self) -> dict[str, Any]:
        """Written beside the dataset: the manifest and the duplicate report."""
        return {DATA_MANIFEST_FILE: self._manifest, DATA_DUPLICATES_FILE: self._duplicates}
