"""Bring your own images, as a new user would: a folder of shapes (some gray, one corrupt file,
one duplicate) through `dvc repro` with data=folder at 64x64, then one image changes."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from PIL import Image

from ..support.dvc_project import edit_yaml, git_commit, make_project_repo, run, run_files
from ..support.images import write_shapes_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_folder_dataset_through_dvc_repro_and_a_changed_image(tmp_path):
    root = make_project_repo(tmp_path, models=["dcgan"])
    planted = write_shapes_folder(root / "images")
    edit_yaml(root / "params.yaml", {"pipeline": {"data": "folder", "data_source": "images"}})
    edit_yaml(root / "conf/data/folder.yaml", {"source": {"path": "images", "on_error": "skip"}})
    git_commit(root, "my images")

    result = run(["dvc", "repro"], root)
    assert f"skipped unreadable {planted['corrupt']}" in result.stdout
    assert "1 exact duplicate(s)" in result.stdout
    meta = json.loads((root / "data/folder/meta.json").read_text())
    assert (
        meta["image_size"] == 64
        and meta["channels"] == 3
        and meta["classes"] == ["circles", "squares"]
    )
    duplicates = json.loads((root / "data/folder/duplicates.json").read_text())
    assert set(duplicates["exact_groups"][0]) == planted["duplicates"]
    dcgan = run_files("dcgan", root=root)
    metrics = json.loads(dcgan.metrics.read_text())
    assert metrics["counts"]["samples"] == 200
    card = (dcgan.export / "MODEL_CARD.md").read_text()
    assert "**Duplicates:** 1 exact" in card and "**Unreadable files skipped:** 1" in card
    with Image.open(dcgan.export / "samples.png") as grid:
        assert grid.size[0] > 4 * 64

    image = root / "images/circles/circles_010.png"
    Image.new("RGB", (80, 72), (250, 0, 0)).save(image)
    status = json.loads(run(["dvc", "status", "--json"], root).stdout)
    assert "fetch" in status, status
    ran = set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], root).stdout))
    assert "fetch" in ran and dcgan.stage("train") in ran, ran
    manifest = json.loads((root / "data/folder/manifest.json").read_text())
    changed = next(e for e in manifest if e["file"] == "circles/circles_010.png")
    assert changed["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
