"""Atomic file writes: a killed stage must never leave a half-written output behind."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from genlab.checks import printable
from genlab.errors import OutputPathError, StageInputError
from genlab.layout import OUTPUT_MARKER


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp's 0600 would hide outputs from others
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; swap it in for ``target`` only on success.

    Only a folder genlab made is ever replaced: every folder built here holds
    ``layout.OUTPUT_MARKER``, and a folder without it is refused (``OutputPathError``) unless
    it is empty, or (made by a genlab from before the marker) holds nothing but files of the
    names this write produces. The project itself (the working directory), its parents, the
    home folder (``protected_folder``) and any folder holding a ``.git`` or ``dvc.yaml`` are
    always refused. The swap renames the old folder aside, renames
    the new one in, then removes the old: a crash at any point leaves ``target`` whole (old or
    new), or both whole copies beside it, never neither. Files and folder are fsync'ed first.
    """
    target = Path(target)
    _refuse_protected(target)
    _refuse_foreign(target, produced=None)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_current_umask())
    try:
        yield tmp
        _refuse_foreign(target, produced={p.name for p in tmp.iterdir()} | {OUTPUT_MARKER})
        (tmp / OUTPUT_MARKER).write_text(_MARKER_TEXT)
        _fsync_tree(tmp)
        _swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_MARKER_TEXT = "made by genlab: this folder is replaced whole when its stage re-runs\n"


def protected_folder(path: str | os.PathLike, project_root: str | os.PathLike) -> str | None:
    """Why no output may be ``path`` (None when it may): it is the project root, a folder
    above it, the home folder or the file system root -- as written or through a link.

    The one rule for both checks: validation (``config.schema``, with Hydra's original working
    directory as ``project_root``) and the folder swap (``atomic_dir``). A relative ``path``
    is taken from the working directory, as every writer opens it.
    """
    forms = {Path(os.path.abspath(path)), Path(os.path.realpath(path))}
    roots = {Path(os.path.abspath(project_root)), Path(os.path.realpath(project_root))}
    for root in roots:
        if any(form == root or form in root.parents for form in forms):
            return f"it is the project folder ({root}) or a folder above it"
    try:
        home = Path.home()
        homes = {home.absolute(), home.resolve()}
    except RuntimeError:  # no home folder known: nothing to protect there
        homes = set()
    if any(form in homes or form == Path(form.anchor) for form in forms):
        return "it is the home folder or the file system root"
    return None


def _refuse_protected(target: Path) -> None:
    """The folders no output may be: those of ``protected_folder`` with the working
    directory as the project (stages run with ``hydra.job.chdir`` off, so it is the folder
    the stage was started in), a repository root (``.git``, ``dvc.yaml``), a link."""
    reason = protected_folder(target, Path.cwd())
    if reason is None and any((target / name).exists() for name in (".git", "dvc.yaml")):
        reason = "it holds a .git or dvc.yaml: it is a project, not an output folder"
    if reason is None and target.is_symlink():
        reason = "it is a symbolic link; give the folder it points to, or another path"
    if reason:
        raise OutputPathError(
            f"refusing to replace {target}: {reason}. Point the output setting at a folder "
            f"of its own inside the project (e.g. exports/<run>)."
        )


def _refuse_foreign(target: Path, produced: set[str] | None) -> None:
    """Refuse a folder genlab did not make. ``produced``: the names the new folder holds
    (None before they are known: then only what no write of genlab's could hold is refused)."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise OutputPathError(
            f"refusing to replace {target}: it is a file, not a folder genlab made. Move it "
            f"away or point the output setting at another path."
        )
    if (target / OUTPUT_MARKER).is_file():
        return
    entries = sorted(target.iterdir())
    # a link to a file counts as a file: DVC's symlink cache type checks outputs out as links
    foreign = [
        p.name
        for p in entries
        if not p.is_file() or (produced is not None and p.name not in produced)
    ]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputPathError(
            f"refusing to replace {target}: it holds files genlab did not write ({shown}) and "
            f"no {OUTPUT_MARKER} marker, so it may be your own folder. Point the output "
            f"setting at another path, or, if it is an old genlab output, delete it "
            f"(`rm -r {target}`) and run again."
        )


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``target`` aside, ``new`` in, then delete the aside copy."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
        raise
    _fsync_dir(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk before it is renamed in: after a
    power cut the renamed folder must not hold empty or half-written files."""
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def torch_archive(save: Callable[[io.BytesIO], None]) -> bytes:
    """The bytes ``save`` (``torch.save`` / ``torch.jit.save`` bound to an object) writes into
    a buffer. Given a path, torch names the zip archive's root folder after the file, and
    :func:`atomic_path` hands out a random temporary name: identical weights would make a
    different file each time (and DVC would re-run everything downstream). Into a buffer the
    root folder is always ``archive``, so the same object gives the same bytes."""
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def save_torch(payload: Any, path: str | os.PathLike) -> None:
    """``torch.save`` of a published file (not a checkpoint): byte-identical for an identical
    payload (see :func:`torch_archive`), and written atomically."""
    import torch

    write_bytes(path, torch_archive(lambda buffer: torch.save(payload, buffer)))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks so a large archive never sits in memory.

    ``algorithm`` is any name :func:`hashlib.new` knows; md5 is used only as a checksum here,
    never for security, so it is requested with ``usedforsecurity=False``.
    """
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: str | os.PathLike, fix: str) -> dict[str, Any]:
    """A JSON object from a file someone else may have made, or StageInputError naming the
    file, what is wrong and ``fix`` (what makes a good one)."""
    try:
        value = json.loads(Path(path).read_text())
    except ValueError as error:  # UnicodeDecodeError included
        raise StageInputError(
            f"{path} is refused: it is not JSON ({printable(str(error))}): {fix}"
        ) from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack: a crafted file
        raise StageInputError(
            f"{path} is refused: it is not JSON genlab reads (nested too deeply): {fix}"
        ) from None
    if not isinstance(value, dict):
        raise StageInputError(
            f"{path} is refused: it holds a {type(value).__name__}, not a JSON object: {fix}"
        )
    return value
