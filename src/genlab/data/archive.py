"""Extracting archives someone else made: member by member, never ``extractall``.

``tarfile``'s "data" filter is bypassed on unpatched Pythons (CVE-2025-4517: symlink chains
longer than PATH_MAX defeat ``os.path.realpath``), and ``zipfile`` trusts its members' declared
sizes. So every member is checked here and copied by genlab itself: its name (no absolute path,
drive letter or ``..``), its type (regular files only: links, devices and fifos are refused by
name), optionally its extension; then its bytes are copied with a counter into a path computed
under the extraction folder, against caps on the member count, each file's bytes and the total
bytes actually written (a zip bomb's header can say anything).
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from genlab.errors import DatasetError

_BLOCK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
#: folder names archivers add that hold no data (macOS resource forks)
IGNORED_FOLDERS = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on what one archive may write; ``setting`` names where a user changes them."""

    max_members: int = 200_000
    max_member_bytes: int = 50 << 20
    max_total_bytes: int = 5 << 30
    setting: str | None = "data.source"

    def name(self, cap: str) -> str:
        return f"{self.setting}.{cap}" if self.setting else f"genlab's fixed {cap}"

    def __post_init__(self) -> None:
        for cap in ("max_members", "max_member_bytes", "max_total_bytes"):
            value = getattr(self, cap)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{cap} must be a positive integer, got {value!r}")


@dataclass
class ExtractReport:
    """What an extraction wrote and what it left out (counted, so meta.json can say so)."""

    written: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # not an allowed extension
    ignored: int = 0  # hidden files and __MACOSX entries


def is_hidden(parts: Collection[str]) -> bool:
    """A hidden file or folder (``.DS_Store``, ``._x.png``) or macOS litter (``__MACOSX``)."""
    return any(part.startswith(".") or part in IGNORED_FOLDERS for part in parts)


def member_parts(name: str, archive: Path | str) -> tuple[str, ...]:
    """The path components of a member name, refusing any that could leave the folder."""
    problem = None
    if "\0" in name:
        problem = "holds a NUL byte"
    elif "\\" in name:
        problem = "holds a backslash (a Windows path)"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif _DRIVE.match(name):
        problem = "starts with a drive letter"
    elif ".." in PurePosixPath(name).parts:
        problem = "climbs out with '..'"
    if problem:
        raise DatasetError(
            f"{archive}: member {name!r} {problem}; genlab only extracts plain relative names "
            f"(an archive made from a folder never has such a member). Re-create the archive "
            f"from the folder of images."
        )
    return tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))


def _refuse_type(archive: Path | str, name: str, kind: str) -> DatasetError:
    return DatasetError(
        f"{archive}: member {name!r} is a {kind}; genlab extracts regular files only (links, "
        f"devices and fifos can point outside the extraction folder). Re-create the archive "
        f"without it (e.g. `tar --dereference`, or `zip` without `--symlinks`)."
    )


class _Writer:
    """Copies member streams under ``root``, counting the bytes actually written."""

    def __init__(self, archive: Path | str, root: Path, limits: ExtractLimits, extensions) -> None:
        self.archive = archive
        self.root = root.resolve()
        self.limits = limits
        self.extensions = {e.lower() for e in extensions} if extensions is not None else None
        self.report = ExtractReport()
        self.members = 0

    def count_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DatasetError(
                f"{self.archive} has more than {self.limits.max_members} members (stopped at "
                f"{name!r}): raise {self.limits.name('max_members')} if that is expected."
            )

    def wanted(self, name: str) -> tuple[str, ...] | None:
        """The parts to write ``name`` to, or None when it is left out (and counted)."""
        parts = member_parts(name, self.archive)
        if not parts:
            return None
        if is_hidden(parts):
            self.report.ignored += 1
            return None
        if self.extensions is not None and Path(parts[-1]).suffix.lower() not in self.extensions:
            self.report.skipped.append("/".join(parts))
            return None
        return parts

    def copy(self, name: str, parts: tuple[str, ...], stream: IO[bytes]) -> None:
        target = self.root.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise DatasetError(
                f"{self.archive}: member {name!r} lies under a file of the same name; "
                f"re-create the archive from the folder of images"
            ) from error
        if not target.parent.resolve().is_relative_to(self.root):
            raise DatasetError(f"{self.archive}: member {name!r} resolves outside the folder")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise DatasetError(f"{self.archive}: member {name!r} clashes with another member")
        # A name that appears twice (`tar -r` appends newer copies): the last one wins, as with
        # tar itself; only a file this extraction wrote can be there, and it is replaced.
        target.unlink(missing_ok=True)
        written = 0
        try:
            # "x": never follows or reuses whatever might have appeared at the path meanwhile.
            with open(target, "xb") as out:
                while block := stream.read(_BLOCK):
                    written += len(block)
                    self.report.bytes += len(block)
                    if written > self.limits.max_member_bytes:
                        raise DatasetError(
                            f"{self.archive}: member {name!r} is larger than "
                            f"{self.limits.max_member_bytes} bytes when extracted (the cap "
                            f"{self.limits.name('max_member_bytes')}); raise it if the file is "
                            f"genuine."
                        )
                    if self.report.bytes > self.limits.max_total_bytes:
                        raise DatasetError(
                            f"{self.archive} extracts to more than "
                            f"{self.limits.max_total_bytes} bytes (stopped in {name!r}; the cap "
                            f"{self.limits.name('max_total_bytes')}): a decompression bomb, or "
                            f"raise the cap if the archive is genuine."
                        )
                    out.write(block)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
            raise DatasetError(
                f"{self.archive}: member {name!r} clashes with another member; re-create the "
                f"archive from the folder of images"
            ) from error
        self.report.written += 1


def _extract_zip(path: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            writer.count_member(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_ISDIR(mode):
                member_parts(info.filename, path)
                continue
            if stat.S_ISLNK(mode):
                raise _refuse_type(path, info.filename, "symlink")
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # no type bits: a plain file
                raise _refuse_type(path, info.filename, "special file")
            parts = writer.wanted(info.filename)
            if parts is None:
                continue
            with archive.open(info) as stream:
                writer.copy(info.filename, parts, stream)


_TAR_KINDS = {
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
}


def extract_tar(
    tar: tarfile.TarFile,
    destination: Path,
    limits: ExtractLimits,
    extensions: Collection[str] | None = None,
    label: Path | str = "",
) -> ExtractReport:
    """Extract an open tar member by member (see the module docstring); nothing else."""
    writer = _Writer(label or tar.name or "archive", Path(destination), limits, extensions)
    for member in tar:
        writer.count_member(member.name)
        if member.isdir():
            member_parts(member.name, writer.archive)
            continue
        if not member.isreg():
            raise _refuse_type(
                writer.archive, member.name, _TAR_KINDS.get(member.type, "special file")
            )
        parts = writer.wanted(member.name)
        if parts is None:
            continue
        stream = tar.extractfile(member)
        if stream is None:  # pragma: no cover - isreg() members always have one
            raise _refuse_type(writer.archive, member.name, "special file")
        with stream:
            writer.copy(member.name, parts, stream)
    return writer.report


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(
    path: Path,
    destination: Path,
    limits: ExtractLimits,
    extensions: Collection[str] | None = None,
) -> ExtractReport:
    """Extract a .zip / .tar(.gz) into ``destination`` (an empty folder genlab made)."""
    try:
        if path.name.lower().endswith(".zip"):
            writer = _Writer(path, destination, limits, extensions)
            _extract_zip(path, writer)
            return writer.report
        with tarfile.open(path) as tar:
            return extract_tar(tar, destination, limits, extensions, label=path)
    except DatasetError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, RuntimeError) as error:
        # RuntimeError: zipfile's "encrypted, password required"; OSError: truncated gzip.
        raise DatasetError(f"{path} is not a readable archive ({error})") from error


@contextmanager
def scratch_folder(parent: Path, prefix: str = ".extract-") -> Iterator[Path]:
    """A fresh hidden folder under ``parent`` (inside the project), removed afterwards."""
    import shutil
    import tempfile

    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
