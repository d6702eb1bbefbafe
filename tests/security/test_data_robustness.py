"""Issue 16, review of the data rows: hostile bytes and names from archives, folders and servers.

Every hostile input is built here for real (a zip whose deflate stream is corrupted, a tar with a
quadratic pax header, a local 127.0.0.1 server speaking broken HTTP); nothing in genlab is mocked.
"""

from __future__ import annotations

import io
import lzma
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from genlab.data.archive import MAX_TAR_HEADER_BYTES, ExtractLimits, extract_archive
from genlab.data.sources.folder import FolderSource
from genlab.errors import DatasetError
from genlab.stages.fetch import run_fetch

from ..support.dvc_project import PROJECT_ROOT, project_env
from ..support.folder_data import FOLDER_CAPS, add_file, png_bytes, source

pytestmark = pytest.mark.timeout(120)

LIMITS = dict(max_members=100, max_member_bytes=16 << 20, max_total_bytes=64 << 20)
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"  # retitles the terminal window, then clears the screen


def corrupt_zip(path: Path) -> Path:
    """Two classes, then a member whose deflate stream starts with a reserved block type."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/b.png", png_bytes((0, 0, 200)))
        bundle.writestr("dogs/c.png", bytes(1 << 16))
    with zipfile.ZipFile(path) as bundle:
        info = bundle.getinfo("dogs/c.png")
    raw = bytearray(path.read_bytes())
    name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_length + extra_length] = 0xFF  # BFINAL=1, BTYPE=11
    path.write_bytes(bytes(raw))
    return path


# --------------------------------------------------------------------------- corrupt archives


def test_a_zip_with_a_corrupt_deflate_stream_is_a_dataset_error(tmp_path):
    """Item 7: a zip member whose deflate data is garbage raised zlib.error (a traceback); it is
    a DatasetError naming the file and saying what to do."""
    archive = corrupt_zip(tmp_path / "images.zip")
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path).load()
    message = str(info.value)
    assert "images.zip" in message and "re-create" in message, message


def corrupt_compressed_tar(path: Path, compression: str) -> Path:
    """A tar whose first member reads, then whose compressed stream turns to garbage: a
    reserved deflate block type (gzip, zlib.error) or overwritten bytes (xz, tarfile detects
    xz itself whatever the name: lzma.LZMAError)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add_file(tar, "cats/a.png", png_bytes())
        add_file(tar, "dogs/b.png", b" ".join(str(i * i).encode() for i in range(300_000)))
    plain = buffer.getvalue()
    if compression == "gz":
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        head = deflate.compress(plain[:600_000]) + deflate.flush(zlib.Z_FULL_FLUSH)
        gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        path.write_bytes(gzip_header + head + b"\xff" + bytes(range(256)) * 64)
    else:
        raw = bytearray(lzma.compress(plain, preset=0))
        middle = int(len(raw) * 0.7)
        raw[middle : middle + 64] = bytes(range(64, 128))
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("compression", "name"), [("gz", "images.tar.gz"), ("xz", "images.tar")])
def test_a_tar_with_corrupt_compressed_data_is_a_dataset_error(tmp_path, compression, name):
    """Item 7: a .tar.gz whose deflate stream turns to garbage after the first member raised
    zlib.error, and an xz stream saved as .tar raised lzma.LZMAError (tracebacks); both are a
    DatasetError naming the file and saying what to do."""
    archive = corrupt_compressed_tar(tmp_path / name, compression)
    with pytest.raises(DatasetError, match="re-create") as info:
        extract_archive(archive, tmp_path / "out", ExtractLimits(**LIMITS))
    assert name in str(info.value)


def test_the_fetch_stage_exits_with_one_line_on_a_corrupt_zip(tmp_path):
    """Item 7: through the real fetch stage, a corrupt archive ends with one line on stderr and
    DatasetError's exit code, never a traceback."""
    archive = corrupt_zip(tmp_path / "images.zip")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("conf", "pipelines"):
        shutil.copytree(PROJECT_ROOT / name, project / name)
    result = subprocess.run(
        [
            sys.executable,
            "pipelines/fetch.py",
            "data=folder",
            f"data.source.path={archive}",
            "data.image_size=16",
        ],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == DatasetError.exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("genlab: DatasetError:") and "images.zip" in lines[-1], lines


# --------------------------------------------------------------------------- broken HTTP


RESPONSES = {
    "garbage status line": f"{ESCAPE}NOT HTTP AT ALL\r\n\r\n".encode(),
    "header line too long": b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n",
    "broken chunked body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nPK\x03\x04\r\nZZZZ-not-a-size\r\n",
    "chunk cut short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nPK\x03\x04",
}


@pytest.fixture
def raw_server() -> Iterator[tuple[str, dict]]:
    """A 127.0.0.1 server that answers every connection with ``state['reply']`` and closes."""
    state: dict = {"reply": b""}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)  # the request
                    connection.sendall(state["reply"])
                    connection.shutdown(socket.SHUT_WR)
                    time.sleep(0.05)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/images.zip?token=SECRET", state
    stop.set()
    thread.join(2)
    listener.close()


@pytest.mark.parametrize("case", sorted(RESPONSES))
def test_a_server_speaking_broken_http_is_a_dataset_error(tmp_path, raw_server, case):
    """Item 7: a hostile server's garbage status line (BadStatusLine), over-long header
    (LineTooLong) or broken chunked body (IncompleteRead) raised http.client.HTTPException, not
    OSError, so it escaped as a traceback; it is a DatasetError naming the redacted URL, with
    the server's bytes escaped, and nothing is left in the download folder."""
    url, state = raw_server
    state["reply"] = RESPONSES[case]
    remote = source(None, tmp_path, url=url, sha256="0" * 64)
    with pytest.raises(DatasetError) as info:
        remote.load()
    message = str(info.value)
    assert "127.0.0.1" in message and "SECRET" not in message, message
    assert "\x1b" not in message and "\x07" not in message, message
    assert "data.source.path" in message, message
    assert not any((tmp_path / "downloads").iterdir())


def test_a_redirect_off_http_is_refused(tmp_path, raw_server):
    """Row 7: urllib follows a redirect to ftp:// as readily as to https://, so a server could
    lead the download off http(s); the redirect is refused, naming both URLs redacted."""
    url, state = raw_server
    state["reply"] = (
        b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1:9/images.zip?pass=SECRET\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    remote = source(None, tmp_path, url=url, sha256="0" * 64)
    with pytest.raises(
        DatasetError, match=r"redirects to ftp://127\.0\.0\.1:9/images\.zip"
    ) as info:
        remote.load()
    assert "SECRET" not in str(info.value)
    assert not any((tmp_path / "downloads").iterdir())


# --------------------------------------------------------------------------- tar caps


def test_skipped_tar_members_count_against_the_total_cap(tmp_path):
    """Item 8: a .tar.gz holding 64 MiB of zeros in a .txt member (~64 KB compressed) was
    decompressed in full to reach the next header and counted against no cap; its size counts
    against data.source.max_total_bytes and the extraction stops before reading it."""
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "cats/a.png", png_bytes())
        add_file(tar, "notes.txt", bytes(64 << 20))
        add_file(tar, "dogs/b.png", png_bytes((0, 0, 200)))
    assert archive.stat().st_size < 200_000
    started = time.monotonic()
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path, max_total_bytes=4 << 20).load()
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "data.source.max_total_bytes" in message and "notes.txt" in message, message
    assert elapsed < 1, elapsed  # refused from its header, not after decompressing it


def pax_archive(path: Path, payload: bytes) -> Path:
    """A tar whose first member carries a pax extended header of ``payload``."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(payload)
    with open(path, "wb") as out:
        out.write(info.tobuf(tarfile.USTAR_FORMAT))
        out.write(payload + bytes(-len(payload) % tarfile.BLOCKSIZE))
        member = tarfile.TarInfo("cats/a.png")
        data = png_bytes()
        member.size = len(data)
        out.write(member.tobuf(tarfile.USTAR_FORMAT))
        out.write(data + bytes(-len(data) % tarfile.BLOCKSIZE))
        out.write(bytes(2 * tarfile.BLOCKSIZE))
    return path


def test_an_oversized_pax_header_is_refused_before_tarfile_parses_it(tmp_path):
    """Item 8: CVE-2024-6232: on Pythons before 3.11.10 / 3.12.6, tarfile's pax parser is
    quadratic (64 KiB of digits took ~4 s here, 1 MiB would take ~20 min) and on every Python it
    reads a pax / GNU long-name header whole into memory. Headers above genlab's fixed cap are
    refused by name before tarfile parses them."""
    size = max(64 << 10, MAX_TAR_HEADER_BYTES + 1)
    archive = pax_archive(tmp_path / "images.tar", b"1" * size)
    started = time.monotonic()
    with pytest.raises(DatasetError) as info:
        extract_archive(archive, tmp_path / "out", ExtractLimits(**LIMITS))
    assert time.monotonic() - started < 1
    assert "pax header" in str(info.value) and "images.tar" in str(info.value)


def test_an_ordinary_pax_header_is_still_read(tmp_path):
    """Item 8: the header cap leaves tarfile's own pax archives (long or non-ASCII names)
    alone."""
    archive = tmp_path / "images.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "cats/" + "é" * 100 + ".png", png_bytes())
    report = extract_archive(archive, tmp_path / "out", ExtractLimits(**LIMITS), {".png"})
    assert report.written == 1


# --------------------------------------------------------------------------- hostile names


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def test_member_names_are_escaped_and_cut_short_in_errors(tmp_path):
    """Item 10: a member name is printed in the error; a 5,000-character name (or one holding
    terminal escapes) flooded or rewrote the terminal. Names are escaped and cut short."""
    long_name = ESCAPE + "a" * 5000 + "/../x.png"
    archive = zip_of(tmp_path / "images.zip", {long_name: png_bytes()})
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path).load()
    message = str(info.value)
    assert len(message) < 1000 and "\x1b" not in message, message[:300]
    assert "climbs out" in message


def test_unreadable_file_names_are_escaped_in_errors_and_console(tmp_path, capsys):
    """Item 10: an unreadable file's name went raw into the DatasetError and into the fetch
    stage's "skipped unreadable" line; both now show it escaped."""
    hostile = f"dogs/{ESCAPE}evil.png"
    archive = zip_of(
        tmp_path / "images.zip",
        {
            "cats/a.png": png_bytes(),
            "cats/b.png": png_bytes((0, 90, 0)),
            "dogs/c.png": png_bytes((0, 0, 200)),
            hostile: b"not a png",
        },
    )
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path).load()
    assert "\x1b" not in str(info.value) and "\\x1b" in str(info.value), str(info.value)

    settings = {
        "_target_": "genlab.data.sources.folder.FolderSource",
        "path": str(archive),
        "image_size": 16,
        "channels": 3,
        "on_error": "skip",
        "download_dir": str(tmp_path / "downloads"),
        **FOLDER_CAPS,
    }
    run_fetch(OmegaConf.create({"data": {"dir": str(tmp_path / "data"), "source": settings}}))
    shown = capsys.readouterr().out
    assert "skipped unreadable" in shown and "evil.png" in shown, shown
    assert "\x1b" not in shown and "\x07" not in shown, shown


def test_a_hostile_top_level_name_is_escaped_in_the_layout_error(tmp_path):
    """Item 10: the "mixes images at the top" message quoted a file name raw."""
    archive = zip_of(
        tmp_path / "images.zip",
        {f"{ESCAPE}top.png": png_bytes(), "cats/a.png": png_bytes(), "dogs/b.png": png_bytes()},
    )
    with pytest.raises(DatasetError, match="mixes images at the top") as info:
        source(archive, tmp_path).load()
    assert "\x1b" not in str(info.value), str(info.value)


# --------------------------------------------------------------------------- meta.json counts


def test_non_images_in_a_plain_folder_are_counted(tmp_path):
    """Item 22: meta.json's left_out.not_images counted archive members only: a folder holding
    .txt and .gif files reported 0. The folder walk counts them too; hidden files apart."""
    for kind, colour in (("cats", (200, 0, 0)), ("dogs", (0, 0, 200))):
        (tmp_path / "images" / kind).mkdir(parents=True)
        (tmp_path / "images" / kind / "a.png").write_bytes(png_bytes(colour))
    (tmp_path / "images" / "cats" / "notes.txt").write_text("hello")
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "dogs" / "anim.gif")
    (tmp_path / "images" / "cats" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "images" / "__MACOSX").mkdir()
    (tmp_path / "images" / "__MACOSX" / "._a.png").write_bytes(b"\0")
    folder = source(tmp_path / "images", tmp_path)
    folder.load()
    assert folder.meta()["left_out"] == {"not_images": 2, "hidden": 2}


# --------------------------------------------------------------------------- caps live in conf/


def test_folder_caps_have_one_home_in_conf():
    """Item 16: the caps were written in conf/data/folder.yaml, FolderSource's defaults and
    ExtractLimits' defaults; conf/ is now the only home, so a missing cap is an error."""
    caps = dict(FOLDER_CAPS)
    caps.pop("max_total_bytes")
    with pytest.raises(TypeError, match="max_total_bytes"):
        FolderSource("images", image_size=16, channels=3, **caps)
    with pytest.raises(TypeError):
        ExtractLimits()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_members must be a positive integer"):
        ExtractLimits(max_members=True, max_member_bytes=1, max_total_bytes=1)
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        source("images", Path("."), max_pixels=0)
