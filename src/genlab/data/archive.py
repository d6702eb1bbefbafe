"""Extracting archives someone else made: member by member, never ``extractall``.

``tarfile``'s "data" filter is bypassed on unpatched Pythons (CVE-2025-4517: symlink chains
longer than PATH_MAX defeat ``os.path.realpath``), and ``zipfile`` trusts its members' declared
sizes. So every member is checked here and copied by genlab itself: its name (no absolute path,
drive letter or ``..``), its type (regular files only: links, devices and fifos are refused by
name), optionally its extension; then its bytes are copied with a counter into a path computed
under the extraction folder, against caps on the member count, each file's bytes and the total
bytes actually written (a zip bomb's header can say anything). In a tar, the members left out
(not images, hidden) count against the total too: reaching the next header means decompressing
them. Pax and GNU long-name headers are read whole into memory by ``tarfile``, and parsed in
quadratic time on Pythons without the CVE-2024-6232 fix, so those larger than
:data:`MAX_TAR_HEADER_BYTES` are refused before ``tarfile`` parses them. Names from the archive
go through :func:`genlab.checks.printable` before they reach a message.
"""

from __future__ import annotations

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from genlab.checks import printable, require_positive
from genlab.errors import DatasetError

_BLOCK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
#: folder names archivers add that hold no data (macOS resource forks)
IGNORED_FOLDERS = frozenset({"__MACOSX"})
#: Whether this Python's pax parser is linear (CVE-2024-6232, fixed in 3.11.10 / 3.12.6 /
#: 3.13, along with this regex): without the fix, 64 KiB of digits in one pax header take ~4 s.
PAX_PARSER_PATCHED = hasattr(tarfile, "_header_length_prefix_re")
#: Largest pax / GNU long-name header accepted (read whole into memory by tarfile): room for a
#: long path and extended attributes; ~0.07 s worst case for the unpatched parser at 8 KiB.
MAX_TAR_HEADER_BYTES = (1 << 20) if PAX_PARSER_PATCHED else (8 << 10)
_TAR_HEADER_KINDS = {
    tarfile.XHDTYPE: "pax header",
    tarfile.XGLTYPE: "global pax header",
    tarfile.SOLARIS_XHDTYPE: "pax header",
    tarfile.GNUTYPE_LONGNAME: "GNU long-name header",
    tarfile.GNUTYPE_LONGLINK: "GNU long-link header",
}


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on what one archive may write; ``setting`` names where a user changes them."""

    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    setting: str | None = "data.source"

    def name(self, cap: str) -> str:
        return f"{self.setting}.{cap}" if self.setting else f"genlab's fixed {cap}"

    def __post_init__(self) -> None:
        require_positive(
            max_members=self.max_members,
            max_member_bytes=self.max_member_bytes,
            max_total_bytes=self.max_total_bytes,
        )


@dataclass
class ExtractReport:
    """What an extraction wrote and what it left out (counted, so meta.json can say so)."""

    written: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # not an allowed extension
    ignored: int = 0  # hidden files and __MACOSX entries


def shown(name: str | Path) -> str:
    """A name from someone else's archive or folder, quoted and safe to print."""
    return f"'{printable(str(name))}'"


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
            f"{printable(str(archive))}: member {shown(name)} {problem}; genlab only extracts "
            f"plain relative names (an archive made from a folder never has such a member). "
            f"Re-create the archive from the folder of images."
        )
    return tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))


def _refuse_type(archive: Path | str, name: str, kind: str) -> DatasetError:
    return DatasetError(
        f"{printable(str(archive))}: member {shown(name)} is a {kind}; genlab extracts regular "
        f"files only (links, devices and fifos can point outside the extraction folder). "
        f"Re-create the archive without it (e.g. `tar --dereference`, or `zip` without "
        f"`--symlinks`)."
    )


class _Writer:
    """Copies member streams under ``root``, counting the bytes actually written."""

    def __init__(self, archive: Path | str, root: Path, limits: ExtractLimits, extensions) -> None:
        self.archive = printable(str(archive))
        self.root = root.resolve()
        self.limits = limits
        self.extensions = {e.lower() for e in extensions} if extensions is not None else None
        self.report = ExtractReport()
        self.members = 0
        self.total = 0  # bytes decompressed: written, or read through to reach the next header

    def count_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DatasetError(
                f"{self.archive} has more than {self.limits.max_members} members (stopped at "
                f"{shown(name)}): raise {self.limits.name('max_members')} if that is expected."
            )

    def count_bytes(self, name: str, size: int) -> None:
        """Count ``size`` more bytes decompressed (in ``name``) against the total cap."""
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise DatasetError(
                f"{self.archive} extracts to more than {self.limits.max_total_bytes} bytes "
                f"(stopped in {shown(name)}; members left out count too, as they are "
                f"decompressed to reach the next one; the cap "
                f"{self.limits.name('max_total_bytes')}): a decompression bomb, or raise the "
                f"cap if the archive is genuine."
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
                f"{self.archive}: member {shown(name)} lies under a file of the same name; "
                f"re-create the archive from the folder of images"
            ) from error
        if not target.parent.resolve().is_relative_to(self.root):
            raise DatasetError(f"{self.archive}: member {shown(name)} resolves outside the folder")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise DatasetError(f"{self.archive}: member {shown(name)} clashes with another member")
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
                            f"{self.archive}: member {shown(name)} is larger than "
                            f"{self.limits.max_member_bytes} bytes when extracted (the cap "
                            f"{self.limits.name('max_member_bytes')}); raise it if the file is "
                            f"genuine."
                        )
                    self.count_bytes(name, len(block))
                    out.write(block)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
            raise DatasetError(
                f"{self.archive}: member {shown(name)} clashes with another member; re-create the "
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


class _CheckedTarInfo(tarfile.TarInfo):
    """tarfile's member header, refusing an oversized pax / GNU long-name header before
    tarfile reads it into memory and parses it (see :data:`MAX_TAR_HEADER_BYTES`)."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        kind = _TAR_HEADER_KINDS.get(self.type)
        if kind and self.size > MAX_TAR_HEADER_BYTES:
            fix = (
                ""
                if PAX_PARSER_PATCHED
                else " (this Python's tarfile parses larger ones in quadratic time: "
                "CVE-2024-6232, fixed in Python 3.11.10 / 3.12.6)"
            )
            raise DatasetError(
                f"{printable(str(archive.name or 'archive'))}: a {kind} of {self.size} bytes, "
                f"more than genlab's fixed {MAX_TAR_HEADER_BYTES}{fix}; an archive of images "
                f"never needs one. Re-create the archive from the folder of images (e.g. "
                f"`tar --format=gnu` or `zip -r`)."
            )
        return super()._proc_member(archive)


def open_tar(path: Path, mode: str = "r:*") -> tarfile.TarFile:
    """``tarfile.open`` with oversized pax / GNU long-name headers refused (every member,
    the first one included: pass a tar opened here to :func:`extract_tar`)."""
    return tarfile.open(path, mode, tarinfo=_CheckedTarInfo)


def extract_tar(
    tar: tarfile.TarFile,
    destination: Path,
    limits: ExtractLimits,
    extensions: Collection[str] | None = None,
    label: Path | str = "",
) -> ExtractReport:
    """Extract an open tar member by member (see the module docstring); nothing else.

    Open it with :func:`open_tar`, so that its first header is checked too."""
    writer = _Writer(label or tar.name or "archive", Path(destination), limits, extensions)
    tar.tarinfo = _CheckedTarInfo  # the headers still to come
    for member in tar:
        writer.count_member(member.name)
        writer.count_bytes(member.name, member.offset_data - member.offset)  # its headers
        if member.isdir():
            member_parts(member.name, writer.archive)
            continue
        if not member.isreg():
            raise _refuse_type(
                writer.archive, member.name, _TAR_KINDS.get(member.type, "special file")
            )
        parts = writer.wanted(member.name)
        if parts is None:
            # Left out, yet decompressed to reach the next header: counted from its header,
            # before tarfile reads it.
            writer.count_bytes(member.name, member.size)
            continue
        stream = tar.extractfile(member)
        if stream is None:  # pragma: no cover - isreg() members always have one
            raise _refuse_type(writer.archive, member.name, "special file")
        with stream:
            writer.copy(member.name, parts, stream)
    return writer.report


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
#: What the stdlib raises on damaged archive bytes: zlib.error (corrupt deflate, in a zip or a
#: gzip), lzma.LZMAError (tarfile opens xz whatever the name), OSError (truncated or bad-CRC
#: gzip, bz2), RuntimeError (zipfile's "encrypted, password required"), NotImplementedError
#: (an unknown zip compression method), ValueError (a zip name that is not valid UTF-8).
_UNREADABLE = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


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
        with open_tar(path) as tar:
            return extract_tar(tar, destination, limits, extensions, label=path)
    except DatasetError:
        raise
    except _UNREADABLE as error:
        raise DatasetError(
            f"{printable(str(path))} is not a readable archive ({type(error).__name__}: "
            f"{printable(str(error))}): it is damaged, truncated or not a .zip / .tar(.gz). "
            f"Download it again, or re-create it from the folder of images."
        ) from error


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
