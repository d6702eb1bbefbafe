"""A user's own images: a folder (one subfolder per class gives labels) or a .zip / .tar.gz,
local or downloaded from a URL whose sha256 the config states.

Everything here may come from someone else, so archives are extracted member by member under
caps into a scratch folder inside ``download_dir`` (``genlab.data.archive``), downloads are
bounded in bytes and time and hashed as they stream (``genlab.data.download``), and only PNG and
JPEG files within a pixel limit are decoded (``genlab.data.images``). Every file is decoded,
converted to the configured mode (alpha composited onto ``background``), fitted to a square
(centre crop or pad) and resized with a named filter, all recorded in the metadata. Files that
cannot be read are reported by name and either fail the stage or are skipped and counted
(``on_error``). A manifest (file, sha256, size) and a near-duplicate report are written beside
the dataset. URLs are recorded redacted (``genlab.urls.redact_url``).

Caps (pixels, archive members and bytes, download bytes and time) have one home, the config
(conf/data/folder.yaml): the constructor requires them. File and folder names come from
someone else, so they go through :func:`genlab.checks.printable` before any message.

Labels: one subfolder per class (at least two), or images directly in the folder (unlabelled);
one folder wrapping either layout is stripped; hidden entries and ``__MACOSX`` are ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from rich.progress import track

from genlab.checks import printable, require_positive
from genlab.data.archive import (
    ExtractLimits,
    extract_archive,
    is_archive,
    is_hidden,
    scratch_folder,
    shown,
)
from genlab.data.download import download, file_name_from_url
from genlab.data.images import decode_image, parse_colour
from genlab.data.store import Split
from genlab.errors import DatasetError
from genlab.io import file_digest
from genlab.layout import DATA_DUPLICATES_FILE, DATA_MANIFEST_FILE
from genlab.urls import redact_url

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
_LISTED = 10  # unreadable files named in the error; meta.json lists them all
LAYOUTS = (
    "Lay the folder out one of two ways: one subfolder per class, at least two "
    "(cats/1.png, dogs/2.png: labelled), or all images directly in it (1.png, 2.png: "
    "unlabelled); one folder wrapping either layout is fine."
)


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
        background: str | Sequence[int] = "white",
        *,
        max_pixels: int,
        max_members: int,
        max_member_bytes: int,
        max_total_bytes: int,
        max_download_bytes: int,
        download_deadline_s: float,
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
        require_positive(max_pixels=max_pixels, max_download_bytes=max_download_bytes)
        if not download_deadline_s > 0:
            raise ValueError(f"download_deadline_s must be positive, got {download_deadline_s!r}")
        self.url = url
        self.sha256 = sha256.lower() if sha256 else None
        self.download_dir = Path(download_dir)
        # The saved file's name comes from the URL's path only, never its query or fragment.
        self.path = self.download_dir / file_name_from_url(url) if url else Path(path)
        self.background = parse_colour(background)
        self.max_pixels = max_pixels
        self.limits = ExtractLimits(
            max_members=max_members,
            max_member_bytes=max_member_bytes,
            max_total_bytes=max_total_bytes,
        )
        self.max_download_bytes = max_download_bytes
        self.download_deadline_s = float(download_deadline_s)
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
        self._wrapper: str | None = None
        self._left_out = {"not_images": 0, "hidden": 0}

    # --- reading ---------------------------------------------------------------------------
    def _shown_source(self) -> str:
        return redact_url(self.url) if self.url else printable(str(self.path))

    def _image_files(self, root: Path) -> list[Path]:
        files = []
        for file in sorted(root.rglob("*")):
            if not file.is_file():
                continue
            if is_hidden(file.relative_to(root).parts):
                self._left_out["hidden"] += 1
            elif file.suffix.lower() in EXTENSIONS:
                files.append(file)
            else:  # an archive's were left out (and counted) when it was extracted
                self._left_out["not_images"] += 1
        if not files:
            raise DatasetError(
                f"no PNG or JPEG images found in {self._shown_source()}; point "
                f"data.source.path at a folder (or .zip / .tar.gz) of images. {LAYOUTS}"
            )
        return files

    def _labels(self, relative: list[PurePosixPath]) -> list[tuple[str, ...]]:
        """Each file's parts below the one wrapping folder (if any); sets the classes.

        Refuses mixed depths and a single class, which would silently give wrong labels.
        """
        parts = [r.parts for r in relative]
        self._wrapper = None
        if all(len(p) >= 2 for p in parts) and len({p[0] for p in parts}) == 1:
            self._wrapper = parts[0][0]
            parts = [p[1:] for p in parts]
        top = [p for p in parts if len(p) == 1]
        nested = [p for p in parts if len(p) > 1]
        if top and nested:
            prefix = f"{self._wrapper}/" if self._wrapper else ""
            raise DatasetError(
                f"{self._shown_source()} mixes images at the top "
                f"({shown(prefix + top[0][0])}, {len(top)} in all) with images in subfolders "
                f"({shown(prefix + '/'.join(nested[0]))}, {len(nested)} in all), so it is "
                f"unclear whether it is labelled. {LAYOUTS}"
            )
        self._classes = sorted({p[0] for p in nested})
        if len(self._classes) == 1:
            raise DatasetError(
                f"{self._shown_source()} has only one class ({shown(self._classes[0])}): labels "
                f"need at least two. {LAYOUTS} For unlabelled images, put them directly in the "
                f"folder."
            )
        return parts

    def _decode(self, file: Path, name: str) -> np.ndarray:
        mode = "L" if self.channels == 1 else "RGB"
        image = decode_image(
            file, mode=mode, max_pixels=self.max_pixels, background=self.background, name=name
        )
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
        relative = [PurePosixPath(f.relative_to(root).as_posix()) for f in files]
        below = self._labels(relative)
        images, labels = [], []
        reading = track(
            zip(files, relative, below, strict=True),
            total=len(files),
            description=f"fetch: reading {len(files)} images",
        )
        for file, name, parts in reading:
            try:
                array = self._decode(file, name.as_posix())
            except Exception as error:  # PIL raises many kinds for broken files
                self._skipped.append({"file": name.as_posix(), "error": f"{error}"})
                continue
            label = self._classes.index(parts[0]) if self._classes else -1
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
            listed = "; ".join(
                printable(f"{s['file']}: {s['error']}") for s in self._skipped[:_LISTED]
            )
            more = len(self._skipped) - _LISTED
            listed += f"; and {more} more (see meta.json)" if more > 0 else ""
            raise DatasetError(
                f"{len(self._skipped)} unreadable or refused image(s) in "
                f"{self._shown_source()}: {listed}. Fix or remove them, or set "
                f"data.source.on_error=skip to leave them out (counted)."
            )
        if len(images) < 2:
            raise DatasetError(f"only {len(images)} readable image(s) in {self._shown_source()}")
        return np.stack(images), np.asarray(labels, dtype=np.int64)

    def _read_source(self) -> tuple[np.ndarray, np.ndarray]:
        if self.path.is_dir():
            return self._read_all(self.path)
        if not self.path.is_file():
            raise DatasetError(
                f"data.source.path={self._shown_source()} does not exist: give a folder of "
                f"images or a .zip / .tar.gz of them"
            )
        if not is_archive(self.path):
            raise DatasetError(
                f"{self._shown_source()}: expected a folder, .zip or .tar.gz (or .tar)"
            )
        # Extracted inside the project (beside downloads), never the system temp dir.
        with scratch_folder(self.download_dir) as scratch:
            report = extract_archive(self.path, scratch, self.limits, EXTENSIONS)
            self._left_out["not_images"] += len(report.skipped)
            self._left_out["hidden"] += report.ignored
            return self._read_all(scratch)

    def _download(self) -> None:
        """Fetch ``url`` into ``path`` unless a file with the expected checksum is there."""
        if self.path.is_file() and file_digest(self.path) == self.sha256:
            return
        download(
            self.url,
            self.path,
            self.sha256,
            max_bytes=self.max_download_bytes,
            deadline_s=self.download_deadline_s,
            progress=f"fetch: downloading {self.path.name}",
        )

    # --- the source interface --------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        from genlab.data.duplicates import find_duplicates

        if self.url:
            self._download()
        images, labels = self._read_source()
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
            "source": f"{self._shown_source()} (sha256 {self.sha256})"
            if self.url
            else str(self.path),
            "licence": self.licence or "not given: set data.source.licence",
            "classes": self._classes,
            "labelled": bool(self._classes),
            "resize_filter": f"{self.resize_filter} (PIL), fit={self.fit}",
            "mode": "L" if self.channels == 1 else "RGB",
            "background": list(self.background),  # under any transparency
            "max_pixels": self.max_pixels,
            "wrapping_folder": self._wrapper,
            "left_out": dict(self._left_out),
            "split": {"test_fraction": self.test_fraction, "seed": self.seed, "stratified": False},
            "source_sha256": source_digest.hexdigest(),
            "skipped": self._skipped,
            "duplicates": {k: v for k, v in self._duplicates.items() if k != "pairs"},
        }

    def extra_files(self) -> dict[str, Any]:
        """Written beside the dataset: the manifest and the duplicate report."""
        return {DATA_MANIFEST_FILE: self._manifest, DATA_DUPLICATES_FILE: self._duplicates}
