"""Data from others: archives, images, downloads and URLs a user did not make themselves.

Each test builds the hostile input for real (a traversal tar, a zip bomb, a huge PNG, a slow
HTTP server on 127.0.0.1) and checks that genlab refuses it by name, writes nothing outside its
own folders and records no secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.errors import ClassifierError, DatasetError

from ..support.dvc_project import PROJECT_ROOT, project_env
from ..support.folder_data import add_file, png_bytes, source

pytestmark = pytest.mark.timeout(120)


def add_link(tar: tarfile.TarFile, name: str, target: str, kind=tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


# --------------------------------------------------------------------------- archives (row 3)


def cve_2025_4517_tar(path: Path) -> None:
    """Symlinks through 16 folders of 247-character names: the resolved path outgrows PATH_MAX,
    so `os.path.realpath` (behind tarfile's "data" filter) stops resolving and a link that looks
    inside points two levels above the extraction folder."""
    component = "d" * 247
    steps = "abcdefghijklmnop"
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "cats/ok.png", png_bytes())
        add_file(tar, "dogs/ok.png", png_bytes((0, 0, 200)))
        folder = ""
        for step in steps:
            info = tarfile.TarInfo(os.path.join(folder, component))
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            add_link(tar, os.path.join(folder, step), component)
            folder = os.path.join(folder, component)
        chain = "/".join(steps)
        add_link(tar, f"{chain}/{'l' * 254}", "../" * len(steps))
        add_link(tar, "escape", f"{chain}/{'l' * 254}/../..")
        add_file(tar, "escape/pwned.png", png_bytes())


def test_row3_cve_2025_4517_symlink_chain_writes_nothing_outside(tmp_path):
    """Row 3: a 1.4 KB .tar.gz (CVE-2025-4517) escaped tarfile's "data" filter on this Python
    and wrote a file two levels above the extraction folder; links are now refused by name."""
    archive = tmp_path / "inbox" / "images.tar.gz"
    archive.parent.mkdir()
    cve_2025_4517_tar(archive)
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path).load()
    message = str(info.value)
    assert "symlink" in message and "'a'" in message, message
    assert not list(tmp_path.rglob("pwned.png")), "the traversal wrote a file"
    assert not list((tmp_path / "downloads").glob(".extract*")), "scratch folder left behind"


def test_row3_cifar_archive_is_extracted_member_by_member(tmp_path):
    """Row 3: the CIFAR-10 source extracted its (checksummed) archive with tarfile's "data"
    filter, which CVE-2025-4517 bypasses; a crafted archive whose md5 the config states is
    refused by member name and writes nothing outside."""
    from genlab.data.sources.torchvision_sources import Cifar10Source

    from ..unit.test_torchvision_sources import CIFAR_ARCHIVE, md5, write_cifar_archive

    root = tmp_path / "deep" / "downloads"
    checksums = write_cifar_archive(root)["checksums"]
    cve_2025_4517_tar(root / CIFAR_ARCHIVE)
    checksums[CIFAR_ARCHIVE] = md5(root / CIFAR_ARCHIVE)
    cifar = Cifar10Source(download_dir=root, checksums=checksums, download=False)
    with pytest.raises(DatasetError, match=r"member 'a' is a symlink"):
        cifar.load()
    assert not list(tmp_path.rglob("pwned.png")), "the traversal wrote a file"


@pytest.mark.parametrize(
    ("member", "build"),
    [
        ("../escape.png", lambda tar: add_file(tar, "../escape.png", png_bytes())),
        ("cats/../../up.png", lambda tar: add_file(tar, "cats/../../up.png", png_bytes())),
        ("/tmp/absolute.png", lambda tar: add_file(tar, "/tmp/absolute.png", png_bytes())),
        ("C:/drive.png", lambda tar: add_file(tar, "C:/drive.png", png_bytes())),
        (
            "cats/hard.png",
            lambda tar: add_link(tar, "cats/hard.png", "../../outside.png", tarfile.LNKTYPE),
        ),
        ("cats/sym.png", lambda tar: add_link(tar, "cats/sym.png", "/etc/passwd")),
        ("cats/dev.png", lambda tar: add_link(tar, "cats/dev.png", "", tarfile.CHRTYPE)),
        ("cats/fifo.png", lambda tar: add_link(tar, "cats/fifo.png", "", tarfile.FIFOTYPE)),
    ],
)
def test_row3_hostile_tar_members_are_refused_by_name(tmp_path, member, build):
    """Row 3: `..`, absolute and drive-letter names, hard and symbolic links, devices and fifos
    in a tar are refused, naming the member; nothing lands outside the extraction folder."""
    (tmp_path / "outside.png").write_bytes(png_bytes((1, 2, 3)))
    archive = tmp_path / "inbox" / "images.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "cats/a.png", png_bytes())
        add_file(tar, "dogs/b.png", png_bytes((0, 0, 200)))
        build(tar)
    before = files_under(tmp_path)
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path).load()
    assert repr(member) in str(info.value), str(info.value)
    assert files_under(tmp_path) == before
    assert not Path("/tmp/absolute.png").exists()


def test_row3_zip_with_dotdot_names_is_refused_by_name(tmp_path):
    """Row 3: a zip member named `../evil.png` (zipfile silently rewrote it and went on) is
    refused by name; nothing is written outside the extraction folder."""
    archive = tmp_path / "inbox" / "images.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/b.png", png_bytes((0, 0, 200)))
        bundle.writestr("../evil.png", png_bytes())
    before = files_under(tmp_path)
    with pytest.raises(DatasetError, match=r"'\.\./evil\.png'"):
        source(archive, tmp_path).load()
    assert files_under(tmp_path) == before


def test_row3_zip_symlink_member_is_refused(tmp_path):
    """Row 3: a zip member stored as a symbolic link (Unix mode bits) is refused by name."""
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/b.png", png_bytes((0, 0, 200)))
        link = zipfile.ZipInfo("cats/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match=r"symlink.*'cats/link\.png'|'cats/link\.png'.*symlink"):
        source(archive, tmp_path).load()


# --------------------------------------------------------------------------- caps (row 6)


def test_row6_zip_bomb_stops_at_the_total_byte_cap(tmp_path):
    """Row 6: a ~100 KB zip holding 100 MiB of zeros in a .png member was written out in full;
    bytes actually written are counted and extraction stops at data.source.max_total_bytes."""
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/bomb.png", bytes(100 << 20))
    assert archive.stat().st_size < 300_000
    cap = 4 << 20
    started = time.monotonic()
    with pytest.raises(DatasetError) as info:
        source(archive, tmp_path, max_total_bytes=cap, max_member_bytes=1 << 30).load()
    message = str(info.value)
    assert "data.source.max_total_bytes" in message and "dogs/bomb.png" in message, message
    assert time.monotonic() - started < 5
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < cap + (1 << 20)


def test_row6_per_file_cap(tmp_path):
    """Row 6: one member larger than data.source.max_member_bytes stops the extraction."""
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/b.png", bytes(2 << 20))
    with pytest.raises(DatasetError, match=r"'dogs/b\.png'.*data\.source\.max_member_bytes"):
        source(archive, tmp_path, max_member_bytes=1 << 20).load()


def test_row6_member_count_cap(tmp_path):
    """Row 6: a zip of many tiny members stops at data.source.max_members."""
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(50):
            bundle.writestr(f"{'cats' if index % 2 else 'dogs'}/{index}.png", png_bytes())
    with pytest.raises(DatasetError, match="data.source.max_members"):
        source(archive, tmp_path, max_members=10).load()


def test_row6_extraction_stays_in_the_projects_own_folders(tmp_path, monkeypatch):
    """Row 6: archives were extracted into the system temp dir; they are now extracted under
    data.source.download_dir (a hidden scratch folder, removed afterwards)."""
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    system_temp.chmod(0o500)  # anything written to the system temp dir fails
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("cats/a.png", png_bytes())
        bundle.writestr("dogs/b.png", png_bytes((0, 0, 200)))
    try:
        splits = source(archive, tmp_path).load()
    finally:
        system_temp.chmod(0o700)
    assert len(splits["train"].labels) + len(splits["test"].labels) == 2
    assert not any((tmp_path / "downloads").iterdir()), "scratch left behind"


# --------------------------------------------------------------------------- downloads (row 7)


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """/endless: no Content-Length, 64 MiB of zeros; /huge: Content-Length of 10 GiB;
    /trickle: one byte every 0.2 s for up to 6 s."""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200)
        path = self.path.split("?")[0]
        if path == "/huge.zip":
            self.send_header("Content-Length", str(10 << 30))
        self.end_headers()
        try:
            if path == "/trickle.zip":
                for _ in range(30):
                    self.wfile.write(b"P")
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                block = bytes(1 << 20)
                for _ in range(64):
                    self.wfile.write(block)
        except OSError:
            pass  # the client gave up: what the tests want


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", ["endless.zip", "huge.zip"])
def test_row7_download_stops_at_the_byte_cap(tmp_path, hostile_server, name):
    """Row 7: a body larger than data.source.max_download_bytes (with or without a
    Content-Length saying so) is cut off at the cap; nothing is left in the download folder."""
    remote = source(
        None,
        tmp_path,
        url=hostile_server + name,
        sha256="0" * 64,
        max_download_bytes=1 << 20,
    )
    started = time.monotonic()
    with pytest.raises(DatasetError, match="data.source.max_download_bytes"):
        remote.load()
    assert time.monotonic() - started < 5
    assert not any((tmp_path / "downloads").iterdir())


def test_row7_a_trickling_server_hits_the_overall_deadline(tmp_path, hostile_server):
    """Row 7: a server sending one byte every 0.2 s never trips a per-read timeout; the
    overall deadline (data.source.download_deadline_s) ends the download."""
    remote = source(
        None,
        tmp_path,
        url=hostile_server + "trickle.zip",
        sha256="0" * 64,
        download_deadline_s=1.0,
    )
    started = time.monotonic()
    with pytest.raises(DatasetError, match="data.source.download_deadline_s"):
        remote.load()
    assert time.monotonic() - started < 3
    assert not any((tmp_path / "downloads").iterdir())


# --------------------------------------------------------------------------- images (rows 8, 9)


def test_row8_a_huge_png_is_refused_before_decoding(tmp_path):
    """Row 8: a ~20 KB PNG of 169 megapixels was decoded (~1 GiB, seconds) with only a warning;
    it is now refused by name from its header, against data.source.max_pixels."""
    for kind in ("cats", "dogs"):
        (tmp_path / "images" / kind).mkdir(parents=True)
        (tmp_path / "images" / kind / "ok.png").write_bytes(png_bytes())
    huge = tmp_path / "images" / "cats" / "huge.png"
    Image.new("1", (13000, 13000)).save(huge)
    assert huge.stat().st_size < 100_000
    started = time.monotonic()
    with pytest.raises(DatasetError) as info:
        source(tmp_path / "images", tmp_path, max_pixels=40_000_000).load()
    message = str(info.value)
    assert "cats/huge.png" in message and "data.source.max_pixels" in message, message
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_row8_9_other_formats_named_png_are_refused(tmp_path, fmt):
    """Rows 8, 9: only PNG and JPEG are decoded, checked by content: a GIF, BMP or TIFF named
    .png is refused by name."""
    for kind in ("cats", "dogs"):
        (tmp_path / "images" / kind).mkdir(parents=True)
        (tmp_path / "images" / kind / "ok.png").write_bytes(png_bytes())
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "images/dogs/fake.png", format=fmt)
    with pytest.raises(DatasetError) as info:
        source(tmp_path / "images", tmp_path).load()
    message = str(info.value)
    assert "dogs/fake.png" in message and fmt in message and "PNG or JPEG" in message, message


def test_row9_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    """Row 9: a full 16-bit ramp was clipped to 3 values; it is scaled to 8 bits."""
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    for name in ("a.png", "b.png"):
        Image.fromarray(ramp).save(tmp_path / name)
    with Image.open(tmp_path / "a.png") as check:
        assert check.mode.startswith("I")
    splits = source(tmp_path, tmp_path, image_size=256, channels=1, resize_filter="nearest")
    images = splits.load()["train"].images
    assert len(np.unique(images)) == 256


def test_row9_transparency_is_composited_onto_the_configured_background(tmp_path):
    """Row 9: a transparent background came out as its hidden colour (red here); it now comes
    out as data.source.background, which meta.json records."""
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (8, 8, 24, 24))
    for name in ("a.png", "b.png"):
        image.save(tmp_path / name)
    palette = image.convert("RGB").quantize(4)
    palette.info["transparency"] = palette.getpixel((0, 0))
    palette.save(tmp_path / "c.png")  # a palette image with a transparent index
    folder = source(tmp_path, tmp_path, image_size=32, background="#00ff00")
    splits = folder.load()
    images = np.concatenate([splits["train"].images, splits["test"].images])
    assert (images[:, :, 0, 0] == [0, 255, 0]).all(), images[:, :, 0, 0]
    assert (images[:, :, 16, 16] == [0, 0, 255]).all()
    assert folder.meta()["background"] == [0, 255, 0]


def test_row9_an_animated_png_is_refused(tmp_path):
    """Row 9: an animated PNG (APNG) was read as its first frame; it is refused by name."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / name)
    frames = [Image.new("RGB", (16, 16), (c, 0, 0)) for c in (0, 120, 240)]
    frames[0].save(tmp_path / "moving.png", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "moving.png") as check:
        assert check.format == "PNG" and check.n_frames == 3
    with pytest.raises(DatasetError, match=r"moving\.png.*animated"):
        source(tmp_path, tmp_path).load()


# --------------------------------------------------------------------------- labels (row 10)


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def test_row10_one_wrapping_folder_is_stripped_and_macos_litter_ignored(tmp_path):
    """Row 10: a zip wrapped in one folder gave one class, and `__MACOSX/` an extra empty class
    shifting the labels; the wrapper is stripped and hidden / `__MACOSX` entries ignored."""
    members = {
        f"photos/{kind}/{i}.png": png_bytes((i * 20, 0, 0))
        for kind in ("cats", "dogs")
        for i in range(3)
    }
    members.update(
        {
            "__MACOSX/photos/cats/._0.png": b"\0\5\26\7 resource fork",
            "photos/.DS_Store": b"\0\0\0\1Bud1",
            "photos/cats/._1.png": b"\0\5\26\7 resource fork",
            "photos/.hidden/x.png": png_bytes(),
        }
    )
    folder = source(zip_of(tmp_path / "photos.zip", members), tmp_path)
    splits = folder.load()
    assert folder.meta()["classes"] == ["cats", "dogs"]
    labels = np.concatenate([splits["train"].labels, splits["test"].labels])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]


def test_row10_a_stray_top_level_image_is_refused_with_the_layouts(tmp_path):
    """Row 10: one stray top-level image made a labelled set silently unlabelled; mixed depths
    are refused with a message giving the two valid layouts."""
    members = {f"{kind}/{i}.png": png_bytes() for kind in ("cats", "dogs") for i in range(2)}
    members["stray.png"] = png_bytes()
    with pytest.raises(DatasetError) as info:
        source(zip_of(tmp_path / "mixed.zip", members), tmp_path).load()
    message = str(info.value)
    assert "stray.png" in message and "one subfolder per class" in message, message


def test_row10_a_single_class_is_refused(tmp_path):
    """Row 10: a single class folder (inside a wrapper) gave a one-class dataset."""
    members = {f"photos/cats/{i}.png": png_bytes() for i in range(3)}
    with pytest.raises(DatasetError, match="only one class.*'cats'.*one subfolder per class"):
        source(zip_of(tmp_path / "one.zip", members), tmp_path).load()


def test_row10_a_one_class_classifier_is_refused():
    """Row 10: train_classifier accepted labels of a single class (a classifier that learns
    nothing, whose accuracy-based metrics are meaningless)."""
    from genlab.data.store import Split
    from genlab.evaluation.classifier_training import train_classifier

    images = np.zeros((8, 1, 8, 8), dtype=np.uint8)
    one = Split(images, np.zeros(8, dtype=np.int64))
    with pytest.raises(ClassifierError, match="2 classes"):
        train_classifier(one, one, epochs=1)


# --------------------------------------------------------------------------- URLs (row 12)


def test_row12_url_secrets_are_kept_out_of_meta_and_errors(tmp_path, hostile_server):
    """Row 12: a presigned URL's signature and user:password were stored in meta.json (and so
    the model card) and printed in errors; they are redacted, and the saved file's name comes
    from the URL's path only."""
    archive = zip_of(
        tmp_path / "served.zip",
        {f"{kind}/{i}.png": png_bytes((i, 0, 0)) for kind in ("cats", "dogs") for i in range(2)},
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    port = hostile_server.rsplit(":", 1)[1]
    url = f"http://user:PASSWORD@127.0.0.1:{port}/endless.zip?X-Amz-Signature=SECRET#SECRET2"
    remote = source(None, tmp_path, url=url, sha256=digest, max_download_bytes=1 << 20)
    assert remote.path.name == "endless.zip"
    with pytest.raises(DatasetError) as info:
        remote.load()
    message = str(info.value)
    assert "SECRET" not in message and "PASSWORD" not in message and "REDACTED" in message
    meta = str(remote.meta())
    assert "SECRET" not in meta and "PASSWORD" not in meta


def test_row12_the_run_record_is_redacted():
    """Row 12: the resolved config a run records (train_summary.json, W&B config) held the
    download URL with its token."""
    from omegaconf import OmegaConf

    from genlab.layout import RunLayout
    from genlab.tracking.identity import RunContext

    url = "https://bucket.s3.amazonaws.com/x.zip?X-Amz-Signature=SECRET&X-Amz-Credential=KEY"
    config = {"data": {"source": {"url": url, "path": "data/images"}}, "note": [url]}
    context = RunContext(OmegaConf.create(config), config, "abc", RunLayout("runs/x"), {})
    assert "SECRET" not in str(context.config) and "KEY" not in str(context.config)
    assert context.config["data"]["source"]["path"] == "data/images"
    assert context.config["data"]["source"]["url"].startswith("https://bucket.s3.amazonaws.com/")


@contextlib.contextmanager
def presigned_fetch_project(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A copy of conf/ and pipelines/, and a local server holding a small zip; yields the
    project, the zip's URL with a presigned-style ``?X-Amz-Signature=SECRET``, and its sha256."""
    served = tmp_path / "served"
    served.mkdir()
    archive = zip_of(
        served / "x.zip",
        {
            f"{kind}/{i}.png": png_bytes((i * 9, 0, 0))
            for kind in ("cats", "dogs")
            for i in range(3)
        },
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    project = tmp_path / "project"
    project.mkdir()
    for name in ("conf", "pipelines"):
        shutil.copytree(PROJECT_ROOT / name, project / name)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(served), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x.zip?X-Amz-Signature=SECRET"
        yield project, url, digest
    finally:
        server.shutdown()
        server.server_close()


def files_holding_secret(project: Path) -> list[str]:
    return [
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and b"SECRET" in p.read_bytes()
    ]


def fetch_from(project: Path, url: str, digest: str, *overrides: str, multirun: bool = False):
    """The real fetch stage of ``project`` on the folder source downloading ``url``."""
    return subprocess.run(
        [
            sys.executable,
            "pipelines/fetch.py",
            *(["-m"] if multirun else []),
            "data=folder",
            f"data.source.url='{url}'",  # quoted: Hydra's grammar
            f"data.source.sha256={digest}",
            *overrides,
        ],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_row12_fetch_stage_writes_no_url_secret_anywhere(tmp_path):
    """Row 12: running the real fetch stage with a presigned URL stored the token in meta.json
    and Hydra's saved config (.hydra/config.yaml, overrides.yaml, hydra.yaml); nothing written
    holds it now."""
    with presigned_fetch_project(tmp_path) as (project, url, digest):
        result = fetch_from(project, url, digest, "data.image_size=16")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SECRET" not in result.stdout + result.stderr
    meta = json.loads((project / "data/folder/meta.json").read_text())
    assert meta["background"] == [255, 255, 255] and meta["classes"] == ["cats", "dogs"]
    assert "REDACTED" in meta["source"]
    written = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.parent.name == ".hydra" for p in written), "Hydra saved no config?"
    leaking = files_holding_secret(project)
    assert not leaking, leaking


def test_row12_a_sweep_records_no_url_secret(tmp_path):
    """Row 12: in a `-m` sweep, each job's overrides (with the download URL and its token) went
    unredacted into genlab_job.json, sweep_summary.json and the printed summary table."""
    with presigned_fetch_project(tmp_path) as (project, url, digest):
        result = fetch_from(
            project, url, digest, "data.image_size=8,16", "hydra.sweep.dir=multirun", multirun=True
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 of 2 jobs succeeded" in result.stdout
    assert "SECRET" not in result.stdout + result.stderr
    summary = json.loads((project / "multirun/sweep_summary.json").read_text())
    (overrides, _) = (job["overrides"] for job in summary["jobs"])
    assert any(o.startswith("data.source.url=") and "REDACTED" in o for o in overrides)
    assert (project / "multirun/1/genlab_job.json").is_file()
    leaking = files_holding_secret(project)
    assert not leaking, leaking


def test_row12_wandb_metadata_holds_no_url_secret(tmp_path, monkeypatch):
    """Row 12: W&B records the command line (``args`` in wandb-metadata.json, uploaded with the
    run), so a `data.source.url=...?X-Amz-Signature=...` override put the token in W&B; the
    recorded args are redacted, and the rest of the metadata (program, python) is kept."""
    from omegaconf import OmegaConf

    from genlab.tracking.wandb_setup import (
        finish_wandb_runs,
        log_to_existing_run,
        make_wandb_logger,
    )

    from ..support.wandb_files import _records

    argument = "data.source.url='https://b.s3.amazonaws.com/x.zip?X-Amz-Signature=SECRET'"
    monkeypatch.setattr(sys, "argv", ["pipelines/train.py", argument])
    logger_cfg = OmegaConf.create(
        {"backend": "wandb", "project": "genlab", "entity": None, "mode": "offline"}
        | {"group": "g", "tags": [], "init_timeout": 30}
    )
    wandb_logger = make_wandb_logger(logger_cfg, tmp_path, "abc123", "dcgan-abc123", {})
    finish_wandb_runs([wandb_logger], succeeded=True)
    log_to_existing_run(logger_cfg, tmp_path, "abc123", {"fid": 1.0}, job_type="evaluate")
    assert sys.argv == ["pipelines/train.py", argument], "the process's own argv is untouched"
    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 2, "the training run and the evaluate stage's resumed run"
    for run_file in run_files:
        # The run's environment record is what `wandb sync` uploads as wandb-metadata.json.
        (environment,) = [e for e in _records(run_file, "environment") if e.program]
        assert environment.args[0].startswith("data.source.url='https://b.s3.amazonaws.com/")
        assert "REDACTED" in environment.args[0] and environment.python and environment.program
    leaking = files_holding_secret(tmp_path)
    assert not leaking, leaking


def redact_together(start: threading.Barrier, path: Path) -> bool:
    from genlab.config.redaction import redact_file

    start.wait()  # all threads at once: the race parallel sweep jobs run into
    return redact_file(path)


def test_row12_concurrent_redaction_of_one_file_is_harmless(tmp_path):
    """Row 12: parallel sweep jobs (joblib) all redact the shared multirun.yaml as they start;
    the fixed temp name ``multirun.yaml.redacting`` made one job's rename fail
    (FileNotFoundError) and abort the sweep. Any number at once now ends redacted, no error."""
    from concurrent.futures import ThreadPoolExecutor

    url = "https://b.s3.amazonaws.com/x.zip?X-Amz-Signature=SECRET"
    shared = tmp_path / "multirun.yaml"
    for _ in range(10):
        shared.write_text("".join(f"- data.source.url='{url}&n={i}'\n" for i in range(2000)))
        with ThreadPoolExecutor(8) as pool:
            changed = list(pool.map(redact_together, [threading.Barrier(8)] * 8, [shared] * 8))
        assert any(changed)
        text = shared.read_text()
        assert "SECRET" not in text and text.count("REDACTED") >= 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multirun.yaml"], "no temp files left"


# --------------------------------------------------------------------------- duplicates (row 15)


def test_row15_exact_duplicates_grow_linearly(tmp_path):
    """Row 15: 30,000 identical images made ~450 million exact-duplicate pairs (~19 GiB); exact
    duplicates are now groups only, in bounded memory and seconds."""
    import tracemalloc

    from genlab.data.duplicates import find_duplicates

    images = np.zeros((30_000, 1, 8, 8), dtype=np.uint8)
    names = [f"{index}.png" for index in range(len(images))]
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = find_duplicates(images, names)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert len(report["exact_groups"]) == 1 and len(report["exact_groups"][0]) == 30_000
    assert report["exact_duplicates"] == 29_999 and report["near_duplicate_pairs"] == 0
    assert peak < 200 << 20, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 30, f"{elapsed:.1f} s"
