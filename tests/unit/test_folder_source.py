"""Bring-your-own images: folders and archives, named errors, manifest and duplicates."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from genlab.data.sources.folder import FolderSource
from genlab.errors import DatasetError

from ..support.folder_data import FOLDER_CAPS
from ..support.images import write_shapes_folder
from .test_torchvision_sources import mirror  # noqa: F401 - the local HTTP server fixture


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes") / "images"
    planted = write_shapes_folder(root)
    return root, planted


def source(path, **overrides) -> FolderSource:
    # Archives are extracted under download_dir: a fresh folder, never the repository's.
    settings = dict(
        image_size=64, channels=3, seed=0, download_dir=tempfile.mkdtemp(), **FOLDER_CAPS
    )
    return FolderSource(str(path) if path else "", **{**settings, **overrides})


def test_a_corrupt_file_fails_the_stage_by_name(shapes):
    root, planted = shapes
    with pytest.raises(DatasetError) as info:
        source(root).load()
    message = str(info.value)
    assert planted["corrupt"] in message and "data.source.on_error=skip" in message


def test_skip_reads_the_rest_with_manifest_labels_and_duplicates(shapes):
    root, planted = shapes
    folder = source(root, on_error="skip")
    splits = folder.load()
    meta, extra = folder.meta(), folder.extra_files()
    images = np.concatenate([splits["train"].images, splits["test"].images])
    assert images.shape == (planted["readable"], 3, 64, 64) and images.dtype == np.uint8
    assert [s["file"] for s in meta["skipped"]] == [planted["corrupt"]]
    assert meta["classes"] == ["circles", "squares"] and meta["labelled"]
    labels = np.concatenate([splits["train"].labels, splits["test"].labels])
    assert set(labels.tolist()) == {0, 1}
    manifest = extra["manifest.json"]
    assert len(manifest) == planted["readable"]
    entry = next(e for e in manifest if e["file"] == "squares/squares_001.png")
    assert len(entry["sha256"]) == 64 and entry["bytes"] > 0 and entry["split"] in ("train", "test")
    duplicates = extra["duplicates.json"]
    assert set(map(str, duplicates["exact_groups"][0])) == planted["duplicates"]
    assert meta["duplicates"]["exact_duplicates"] == 1
    assert meta["resize_filter"] == "lanczos (PIL), fit=center_crop"


def test_gray_mode_and_pad_fit(shapes):
    root, planted = shapes
    folder = source(root, on_error="skip", channels=1, fit="pad", resize_filter="bicubic")
    splits = folder.load()
    assert splits["train"].images.shape[1:] == (1, 64, 64)
    # The shapes are wider than tall: padding to a square leaves black bars top and bottom.
    assert splits["train"].images[:, :, 0, :].max() == 0
    assert folder.meta()["mode"] == "L"


def test_archives_give_the_same_images_as_the_folder(shapes, tmp_path):
    root, _ = shapes
    expected = source(root, on_error="skip").load()["train"].images
    zipped = shutil.make_archive(str(tmp_path / "images"), "zip", root)
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as archive:
        for path in sorted(root.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(root)))
    for archive in (zipped, tmp_path / "images.tar.gz"):
        got = source(archive, on_error="skip").load()["train"].images
        assert np.array_equal(got, expected), archive


def test_a_folder_without_class_subfolders_is_unlabelled(tmp_path):
    from ..support.images import shape_image

    for index in range(6):
        shape_image("circles", index).save(tmp_path / f"{index}.png")
    folder = source(tmp_path)
    splits = folder.load()
    assert (splits["train"].labels == -1).all() and not folder.meta()["labelled"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(fit="stretch"), "fit must be one of"),
        (dict(resize_filter="cubic"), "resize_filter must be one of"),
        (dict(on_error="ignore"), "on_error must be one of"),
    ],
)
def test_bad_options_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        source(tmp_path, **overrides)


def test_missing_path_and_empty_folder_say_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        source(tmp_path / "nope").load()
    with pytest.raises(DatasetError, match="no PNG or JPEG images"):
        source(tmp_path).load()


def test_archive_from_a_url_with_its_checksum(shapes, mirror, tmp_path, capsys):  # noqa: F811
    import hashlib

    root, _ = shapes
    served, base_url = mirror
    archive = Path(shutil.make_archive(str(served / "shapes"), "zip", root))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    downloads = tmp_path / "downloads"
    expected = source(root, on_error="skip").load()["train"].images

    remote = source(
        None,
        url=base_url + "shapes.zip",
        sha256=digest,
        download_dir=str(downloads),
        on_error="skip",
    )
    assert np.array_equal(remote.load()["train"].images, expected)
    shown = capsys.readouterr().out
    assert "fetch: downloading shapes.zip" in shown, shown
    assert "fetch: reading" in shown and "fetch: hashing" in shown, shown
    assert remote.meta()["source"].startswith(base_url) and digest in remote.meta()["source"]

    wrong = source(
        None, url=base_url + "shapes.zip", sha256="0" * 64, download_dir=str(tmp_path / "other")
    )
    with pytest.raises(DatasetError, match="expected 0000"):
        wrong.load()
    assert not any((tmp_path / "other").iterdir()), "a failed download leaves nothing behind"
    with pytest.raises(ValueError, match="sha256 is required with url"):
        source(None, url=base_url + "shapes.zip")
