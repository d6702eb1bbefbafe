"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own download and parsing code.

torchvision downloads and parses these datasets, but it never checksums the MNIST raw files and
trusts whatever uncompressed files it finds. So genlab verifies the md5 of every downloaded
archive itself (upstream md5s, or ``checksums`` from the config), always re-extracts the
uncompressed files from the verified archives, and only then lets torchvision parse them.
Every failure is a ``DatasetError`` that names the file and says how to fix it.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import genlab  # noqa: F401  (must precede torchvision: makes it importable on a CPU torch)
from genlab.checks import require_positive
from genlab.data.archive import ExtractLimits, extract_tar, open_tar
from genlab.data.store import Split
from genlab.errors import DatasetError
from genlab.io import atomic_path, file_digest

MD5_LENGTH = 32
NATIVE_IDX_SIZE = 28
PADDED_IDX_SIZE = 32
CIFAR_SIZE = 32
RESIZE_FILTER = "bilinear (torch.nn.functional.interpolate, align_corners=False, antialias=True)"
_RESIZE_CHUNK = 4096

IDX_DATASETS: dict[str, dict[str, str]] = {
    "mnist": {
        "class": "MNIST",
        "homepage": "http://yann.lecun.com/exdb/mnist/",
        "licence": "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
    },
    "fashion_mnist": {
        "class": "FashionMNIST",
        "homepage": "https://github.com/zalandoresearch/fashion-mnist",
        "licence": "MIT (Zalando Research)",
    },
}
CIFAR10_INFO = {
    "homepage": "https://www.cs.toronto.edu/~kriz/cifar.html",
    "licence": "no explicit licence; cite Krizhevsky 2009, research use",
}
# Errors the stdlib raises on a truncated or garbled gzip / tar stream.
_ARCHIVE_ERRORS = (EOFError, OSError, zlib.error, tarfile.TarError, ValueError)
# Errors torchvision's parsers raise on malformed IDX / pickle content.
_PARSE_ERRORS = (
    AssertionError,
    TypeError,
    ValueError,
    RuntimeError,
    IndexError,
    KeyError,
    EOFError,
)


# --------------------------------------------------------------------------- shared helpers


def _torchvision_datasets() -> Any:
    """Import lazily: torchvision costs seconds, and only the fetch stage needs it."""
    import torchvision.datasets

    return torchvision.datasets


def _tv_utils() -> Any:
    import torchvision.datasets.utils

    return torchvision.datasets.utils


def _check_mirrors(mirrors: Sequence[str] | None) -> list[str] | None:
    """None means upstream's; otherwise base URLs (``.../``) tried in order before giving up."""
    if mirrors is None:
        return None
    if isinstance(mirrors, str) or not all(isinstance(m, str) and m for m in mirrors):
        raise ValueError(
            f"mirrors must be a list of base URLs such as ['https://host/mnist/'] "
            f"or null for upstream's, got {mirrors!r}"
        )
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _resolve_checksums(
    checksums: Mapping[str, str] | None, upstream: dict[str, str]
) -> dict[str, str]:
    """Return {file: md5}: the upstream md5s, or the config's, which must name exactly those files.

    An incomplete dict is refused rather than filled in from upstream: a typo in a file name
    would otherwise silently fall back to a checksum the user did not mean.
    """
    if checksums is None:
        return dict(upstream)
    given = {str(name): str(md5).strip().lower() for name, md5 in checksums.items()}
    missing, unknown = sorted(set(upstream) - set(given)), sorted(set(given) - set(upstream))
    if missing or unknown:
        raise ValueError(
            f"data.source.checksums must give an md5 for exactly {sorted(upstream)}; "
            f"missing {missing}, unknown {unknown}. Use null for the upstream md5s."
        )
    for name, md5 in given.items():
        if len(md5) != MD5_LENGTH or any(c not in "0123456789abcdef" for c in md5):
            raise ValueError(f"data.source.checksums[{name!r}] is not an md5 hex digest: {md5!r}")
    return given


def _verify_md5(path: Path, expected: str, source: str) -> str:
    """Refuse a file whose md5 differs from the expected one; return the verified md5."""
    actual = file_digest(path, "md5")
    if actual != expected:
        raise DatasetError(
            f"{path} failed its checksum: expected md5 {expected} ({source}), got {actual}. "
            f"The file is corrupt, truncated or a different version: delete it so the fetch "
            f"stage downloads it again (data.source.download=true), or fix "
            f"data.source.checksums if you placed a different file on purpose."
        )
    return actual


def _download(urls: list[str], target: Path, md5: str) -> None:
    """Download ``target`` from the first URL that works, md5-checked by torchvision.

    The download lands in a scratch folder and is moved in only once complete and verified,
    so an interrupted download never leaves a truncated archive at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch:
            try:
                _tv_utils().download_url(url, root=scratch, filename=target.name, md5=md5)
            except (RuntimeError, OSError) as error:  # URLError is an OSError
                errors.append(f"  {url}: {type(error).__name__}: {error}")
                continue
            os.replace(Path(scratch) / target.name, target)
            return
    raise DatasetError(
        f"could not download {target.name} (expected md5 {md5}):\n" + "\n".join(errors) + "\n"
        f"Check the network connection, or download the file yourself and place it at {target}."
    )


def _ensure_archive(path: Path, urls: list[str], md5: str, download: bool) -> None:
    """Download a missing archive when allowed; otherwise say exactly what is missing."""
    if path.is_file():
        return
    if not download:
        raise DatasetError(
            f"{path} is missing and data.source.download=false. Set data.source.download=true "
            f"to download it, or place the upstream file there ({urls[0]})."
        )
    _download(urls, path, md5)


def _to_size(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 N x C x H x W images, in chunks to bound memory."""
    import torch
    import torch.nn.functional as F

    out = np.empty((images.shape[0], images.shape[1], size, size), dtype=np.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        batch = torch.from_numpy(images[start : start + _RESIZE_CHUNK]).float()
        batch = F.interpolate(
            batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + _RESIZE_CHUNK] = batch.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _checked_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{where} has labels outside 0..{num_classes - 1} "
            f"(min {labels.min()}, max {labels.max()}): the file is not the upstream dataset."
        )
    return labels


# --------------------------------------------------------------------------- MNIST-like (IDX)


@functools.cache
def _idx_class(class_name: str) -> type:
    """torchvision's MNIST-like class, minus its one bypass of genlab's verification.

    ``_check_legacy_exist`` would load a stale ``processed/*.pt`` cache instead of the verified
    raw files; everything else, the IDX parser included, is torchvision's own code.
    """
    base = getattr(_torchvision_datasets(), class_name)

    class Verified(base):  # type: ignore[misc, valid-type]
        def _check_legacy_exist(self) -> bool:
            return False

        @property
        def raw_folder(self) -> str:  # keep torchvision's <root>/<ClassName>/raw layout
            return os.path.join(self.root, class_name, "raw")

    Verified.__name__ = Verified.__qualname__ = f"Verified{class_name}"
    return Verified


def _gunzip(archive: Path) -> None:
    """Re-create the uncompressed file from a verified .gz, atomically."""
    target = archive.with_suffix("")
    try:
        with gzip.open(archive, "rb") as source, atomic_path(target) as tmp:
            with open(tmp, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(
            f"{archive} passed its checksum but cannot be decompressed "
            f"({type(error).__name__}: {error}). Delete it and re-download it "
            f"(data.source.download=true), and check data.source.checksums."
        ) from error


class IdxSource:
    """MNIST or Fashion-MNIST: verified upstream IDX archives parsed by torchvision."""

    def __init__(
        self,
        dataset: str,
        download_dir: str | os.PathLike = "data/_downloads",
        image_size: int = 32,
        checksums: Mapping[str, str] | None = None,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ):
        if dataset not in IDX_DATASETS:
            raise ValueError(
                f"data.source.dataset must be one of {sorted(IDX_DATASETS)}, got {dataset!r}"
            )
        self.dataset = dataset
        self.info = IDX_DATASETS[dataset]
        self.download_dir = Path(download_dir).expanduser()
        require_positive(image_size=image_size)
        self.image_size = image_size
        self.download = _check_bool("download", download)
        self.checksums_source = "upstream (torchvision)" if checksums is None else "config"
        self.checksums = _resolve_checksums(checksums, dict(self._upstream_resources()))
        self.mirrors = _check_mirrors(mirrors)
        self._verified: dict[str, str] | None = None
        self._classes: list[str] | None = None

    def _upstream_resources(self) -> list[tuple[str, str]]:
        return list(getattr(_torchvision_datasets(), self.info["class"]).resources)

    def _mirrors(self) -> list[str]:
        if self.mirrors is not None:
            return self.mirrors
        return list(getattr(_torchvision_datasets(), self.info["class"]).mirrors)

    @property
    def raw_folder(self) -> Path:
        return self.download_dir / self.info["class"] / "raw"

    def _urls(self, filename: str) -> list[str]:
        return [f"{mirror}{filename}" for mirror in self._mirrors()]

    def _prepare(self) -> dict[str, str]:
        """Download what is missing, verify every archive, then re-extract all of them."""
        verified = {}
        for filename, _ in self._upstream_resources():
            path, md5 = self.raw_folder / filename, self.checksums[filename]
            _ensure_archive(path, self._urls(filename), md5, self.download)
            verified[filename] = _verify_md5(path, md5, self.checksums_source)
        for filename in verified:
            _gunzip(self.raw_folder / filename)
        return verified

    def _load_split(self, train: bool) -> Split:
        cls = _idx_class(self.info["class"])
        where = f"{self.raw_folder} ({'train' if train else 't10k'} files)"
        try:
            data = cls(root=str(self.download_dir), train=train, download=False)
        except _PARSE_ERRORS as error:
            raise DatasetError(
                f"torchvision could not parse {where}: {type(error).__name__}: {error}. The "
                f"archives passed their checksums, so data.source.checksums names files that "
                f"are not {self.info['class']} IDX files; fix it, or use null for upstream md5s."
            ) from error
        self._classes = list(data.classes)
        images = data.data.numpy()[:, None]  # N x 28 x 28 -> N x 1 x 28 x 28
        labels = _checked_labels(data.targets.numpy(), len(data.classes), where)
        return Split(images=self._resize(images), labels=labels)

    def _resize(self, images: np.ndarray) -> np.ndarray:
        """Zero-pad 28 -> 32 (the usual GAN size, digits unscaled); otherwise resize."""
        if self.image_size == images.shape[-1]:
            return np.ascontiguousarray(images)
        if self.image_size == PADDED_IDX_SIZE and images.shape[-1] == NATIVE_IDX_SIZE:
            pad = (PADDED_IDX_SIZE - NATIVE_IDX_SIZE) // 2
            return np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        return _to_size(images, self.image_size)

    def _resize_description(self) -> str:
        if self.image_size == NATIVE_IDX_SIZE:
            return "none (native 28x28)"
        if self.image_size == PADDED_IDX_SIZE:
            return "none: 28x28 zero-padded by 2 px on each side to 32x32"
        return f"{RESIZE_FILTER}: 28x28 -> {self.image_size}x{self.image_size}"

    def load(self) -> dict[str, Split]:
        """Verify and extract the archives, then parse both splits with torchvision."""
        verified = self._prepare()
        splits = {"train": self._load_split(train=True), "test": self._load_split(train=False)}
        self._verified = verified
        return splits

    def meta(self) -> dict[str, Any]:
        """Provenance for meta.json; describes what ``load`` verified (runs it if not yet run)."""
        if self._verified is None:
            self.load()
        return {
            "name": self.dataset,
            "source": f"torchvision.datasets.{self.info['class']}",
            "homepage": self.info["homepage"],
            "urls": {name: self._urls(name) for name in self._verified},
            "licence": self.info["licence"],
            "classes": self._classes,
            "resize_filter": self._resize_description(),
            "checksums": {
                "algorithm": "md5",
                "from": self.checksums_source,
                "files": dict(self._verified),
            },
            "torchvision_version": _torchvision_version(),
        }


def _torchvision_version() -> str:
    import torchvision

    return torchvision.__version__


# --------------------------------------------------------------------------- CIFAR-10


@functools.cache
def _cifar_class() -> type:
    """CIFAR10 whose batch md5s come from genlab's checksums, so torchvision's own
    ``_check_integrity`` runs on every batch with the md5s the config chose."""
    base = _torchvision_datasets().CIFAR10

    class VerifiedCIFAR10(base):  # type: ignore[misc, valid-type]
        def __init__(self, root: str, train: bool, md5s: Mapping[str, str]):
            self.train_list = [[name, md5s[name]] for name, _ in base.train_list]
            self.test_list = [[name, md5s[name]] for name, _ in base.test_list]
            self.meta = {**base.meta, "md5": md5s[base.meta["filename"]]}
            super().__init__(root, train=train, download=False)

    return VerifiedCIFAR10


def _cifar_upstream() -> dict[str, str]:
    cls = _torchvision_datasets().CIFAR10
    files = {cls.filename: cls.tgz_md5}
    files.update({name: md5 for name, md5 in cls.train_list + cls.test_list})
    files[cls.meta["filename"]] = cls.meta["md5"]
    return files


# CIFAR-10's python archive: 8 members, ~178 MB extracted; generous caps, fixed in code (the
# archive is md5-checked before extraction, so they are a second line, not a setting).
CIFAR_MAX_MEMBERS = 1_000
CIFAR_MAX_MEMBER_BYTES = 256 << 20
CIFAR_MAX_TOTAL_BYTES = 1 << 30
_CIFAR_LIMITS = ExtractLimits(
    max_members=CIFAR_MAX_MEMBERS,
    max_member_bytes=CIFAR_MAX_MEMBER_BYTES,
    max_total_bytes=CIFAR_MAX_TOTAL_BYTES,
    setting=None,
)


def _safe_extractall(tar: tarfile.TarFile, destination: str) -> None:
    """Member by member (``genlab.data.archive``): tarfile's own "data" filter is bypassed on
    unpatched Pythons (CVE-2025-4517), so it is never relied on."""
    extract_tar(tar, Path(destination), _CIFAR_LIMITS, label=tar.name or "CIFAR-10 archive")


class Cifar10Source:
    """CIFAR-10: the verified upstream archive, batches md5-checked and parsed by torchvision."""

    def __init__(
        self,
        download_dir: str | os.PathLike = "data/_downloads",
        image_size: int = 32,
        checksums: Mapping[str, str] | None = None,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ):
        self.download_dir = Path(download_dir).expanduser()
        require_positive(image_size=image_size)
        self.image_size = image_size
        self.download = _check_bool("download", download)
        self.checksums_source = "upstream (torchvision)" if checksums is None else "config"
        self.checksums = _resolve_checksums(checksums, _cifar_upstream())
        self.mirrors = _check_mirrors(mirrors)
        self._verified: dict[str, str] | None = None
        self._classes: list[str] | None = None

    @property
    def _tv(self) -> Any:
        return _torchvision_datasets().CIFAR10

    @property
    def archive(self) -> Path:
        return self.download_dir / self._tv.filename

    @property
    def urls(self) -> list[str]:
        if self.mirrors is None:
            return [self._tv.url]
        return [f"{mirror}{self._tv.filename}" for mirror in self.mirrors]

    @property
    def batches_folder(self) -> Path:
        return self.download_dir / self._tv.base_folder

    def _extract(self) -> None:
        """Replace the batches folder with a fresh extraction of the verified archive."""
        with tempfile.TemporaryDirectory(prefix=".cifar-extract.", dir=self.download_dir) as tmp:
            try:
                with open_tar(self.archive, "r:gz") as tar:
                    _safe_extractall(tar, tmp)
            except _ARCHIVE_ERRORS as error:
                raise DatasetError(
                    f"{self.archive} passed its checksum but cannot be extracted "
                    f"({type(error).__name__}: {error}). Delete it and re-download it "
                    f"(data.source.download=true), and check data.source.checksums."
                ) from error
            extracted = Path(tmp) / self._tv.base_folder
            if not extracted.is_dir():
                raise DatasetError(
                    f"{self.archive} does not contain {self._tv.base_folder}/: it is not the "
                    f"CIFAR-10 python archive. Delete it and re-download it."
                )
            shutil.rmtree(self.batches_folder, ignore_errors=True)
            os.replace(extracted, self.batches_folder)

    def _integrity_error(self, error: Exception) -> DatasetError:
        """Turn torchvision's generic 'not found or corrupted' into one naming the file."""
        for name in [n for n in self.checksums if n != self._tv.filename]:
            path = self.batches_folder / name
            actual = file_digest(path, "md5") if path.is_file() else "missing"
            if actual != self.checksums[name]:
                return DatasetError(
                    f"{path} failed torchvision's integrity check: expected md5 "
                    f"{self.checksums[name]} ({self.checksums_source}), got {actual}. The archive "
                    f"{self.archive} passed its own checksum, so it holds a different version "
                    f"of this file: fix data.source.checksums, or delete the archive and "
                    f"re-download it."
                )
        return DatasetError(
            f"torchvision could not read {self.batches_folder}: {type(error).__name__}: {error}. "
            f"Delete {self.archive} and re-download it."
        )

    def _load_split(self, train: bool) -> Split:
        cls = _cifar_class()
        try:
            data = cls(root=str(self.download_dir), train=train, md5s=self.checksums)
        except (*_PARSE_ERRORS, OSError, pickle.UnpicklingError) as error:
            raise self._integrity_error(error) from error  # RuntimeError: md5 mismatch
        self._classes = list(data.classes)
        images = np.ascontiguousarray(data.data.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        labels = _checked_labels(
            np.asarray(data.targets), len(data.classes), str(self.batches_folder)
        )
        if self.image_size != CIFAR_SIZE:
            images = _to_size(images, self.image_size)
        return Split(images=images, labels=labels)

    def load(self) -> dict[str, Split]:
        """Verify and extract the archive, then let torchvision check and parse every batch."""
        md5 = self.checksums[self._tv.filename]
        _ensure_archive(self.archive, self.urls, md5, self.download)
        _verify_md5(self.archive, md5, self.checksums_source)
        self._extract()
        splits = {"train": self._load_split(train=True), "test": self._load_split(train=False)}
        self._verified = dict(self.checksums)
        return splits

    def meta(self) -> dict[str, Any]:
        """Provenance for meta.json; describes what ``load`` verified (runs it if not yet run)."""
        if self._verified is None:
            self.load()
        resize = (
            "none (native 32x32)"
            if self.image_size == CIFAR_SIZE
            else (f"{RESIZE_FILTER}: 32x32 -> {self.image_size}x{self.image_size}")
        )
        return {
            "name": "cifar10",
            "source": "torchvision.datasets.CIFAR10",
            "homepage": CIFAR10_INFO["homepage"],
            "urls": {self._tv.filename: self.urls},
            "licence": CIFAR10_INFO["licence"],
            "classes": self._classes,
            "resize_filter": resize,
            "checksums": {
                "algorithm": "md5",
                "from": self.checksums_source,
                "files": dict(self._verified),
            },
            "torchvision_version": _torchvision_version(),
        }
