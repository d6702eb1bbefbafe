"""A stage re-run on identical inputs writes byte-identical files, so DVC skips everything
downstream: train_classifier, evaluate and export, each run twice on the same inputs, and the
bytes of every file they write compared.

The one exception is measured, not hidden: a C2PA manifest. c2pa-rs salts every assertion
with 16 random bytes (no setting turns it off) and ECDSA signatures are randomised, so a signed
PNG's ``caBX`` chunk and a detached ``.c2pa`` manifest differ in those bytes. For them the test
asserts that everything outside the manifest is byte-identical and that the manifests say the
same thing (the same label, claim, assertions and signer, both Trusted)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab import credentials
from genlab.layout import DETACHED_MANIFEST_SUFFIX, EXPORT_RECORD, MODEL_CARD, classifier_report
from genlab.stages.export import run_export
from genlab.stages.fetch import run_fetch
from genlab.stages.train import run_train
from genlab.stages.train_classifier import run_train_classifier

from ..conftest import compose_config_dir, pipeline_paths_under, tiny_model_overrides
from ..support.training import PROJECT_ROOT

pytestmark = pytest.mark.timeout(600)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MANIFEST_CHUNK = b"caBX"


def overrides(root: Path) -> list[str]:
    return [
        *pipeline_paths_under(root),
        "metrics.classifier.epochs=1",
        "logger=csv",
        "data.batch_size=16",
        "train.steps=6",
        "evaluate.num_samples=40",
        "evaluate.kid_subset_size=20",
        "evaluate.kid_subsets=4",
        "evaluate.bootstrap.rounds=4",
        "evaluate.sample_counts=[20,40]",
        "evaluate.sample_count_draws=2",
        "evaluate.memorization.pairs=4",
        "export.grid_images=4",
        *tiny_model_overrides("dcgan"),
    ]


def config(root: Path):
    return compose_config_dir(*overrides(root))


def run_stage(stage: str, root: Path) -> None:
    """A stage as DVC runs it: its script, in a process of its own (TorchScript names the
    classes it traces with a per-process counter, so only a fresh process shows what a re-run
    writes)."""
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines" / f"{stage}.py"),
            *overrides(root),
            f"hydra.run.dir={root / 'hydra' / stage}",
        ],
        cwd=root,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(PROJECT_ROOT)]),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def snapshot(*paths: Path) -> dict[str, bytes]:
    """Every file under ``paths`` (files or folders): relative name -> bytes."""
    found: dict[str, bytes] = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            found[str(file.relative_to(path.parent))] = file.read_bytes()
    assert found, f"no files under {paths}"
    return found


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(PNG_SIGNATURE)
    at, found = len(PNG_SIGNATURE), []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        found.append((kind, data[at : at + 12 + length]))
        at += 12 + length
    return found


def without_manifest(data: bytes) -> bytes:
    """A PNG's bytes with its C2PA chunk taken out (it must have had one)."""
    chunks = png_chunks(data)
    assert any(kind == MANIFEST_CHUNK for kind, _ in chunks), "the PNG is not signed"
    return PNG_SIGNATURE + b"".join(raw for kind, raw in chunks if kind != MANIFEST_CHUNK)


def manifest_report(data: bytes, mime: str, manifest: bytes | None = None) -> dict:
    """What a manifest says, as c2pa reads it: it must be Trusted by this machine's root."""
    import io

    import c2pa

    context = c2pa.Context.from_dict(
        {"trust": {"trust_anchors": b"\n".join(credentials.trust_anchors()).decode()}}
    )
    with c2pa.Reader(mime, io.BytesIO(data), manifest, context=context) as reader:
        report = json.loads(reader.json())
    assert report["validation_state"] == credentials.TRUSTED, report.get("validation_results")
    return report


def assert_same_outputs(first: dict[str, bytes], second: dict[str, bytes]) -> None:
    """Byte-identical files, but for the C2PA salts and signature (see the module doc)."""
    assert sorted(first) == sorted(second)
    for name, data in first.items():
        again = second[name]
        if name.endswith(".png"):
            assert without_manifest(data) == without_manifest(again), name
            assert manifest_report(data, "image/png") == manifest_report(again, "image/png"), name
        elif name.endswith(DETACHED_MANIFEST_SUFFIX):
            model = name.removesuffix(DETACHED_MANIFEST_SUFFIX)
            mime = credentials.mime_type(model)
            assert manifest_report(first[model], mime, data) == manifest_report(
                second[model], mime, again
            ), name
        else:
            assert data == again, (
                f"{name} differs between two runs:\n{first_difference(data, again)}"
            )


def first_difference(data: bytes, again: bytes) -> str:
    """The first differing line of two texts (or the first differing byte), for the message."""
    try:
        lines = zip(data.decode().splitlines(), again.decode().splitlines(), strict=False)
        return next(f"{a!r}\n{b!r}" for a, b in lines if a != b)
    except (UnicodeDecodeError, StopIteration):
        pairs = enumerate(zip(data, again, strict=False))
        return f"first difference at byte {next((i for i, (a, b) in pairs if a != b), None)}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("byte-reproducible")
    run_fetch(config(root))
    return root


def test_train_classifier_rewrites_identical_bytes(project, monkeypatch):
    """Identical weights were written as a different file (torch.save named the zip's root
    folder after the random temporary file): DVC then re-ran every evaluate downstream."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cfg = config(project)
    path = Path(cfg.paths.classifier)
    runs = []
    for _ in range(2):
        run_train_classifier(cfg)
        runs.append(snapshot(path, classifier_report(path)))
    assert runs[0] == runs[1]


def test_evaluate_and_export_rewrite_identical_bytes(project, monkeypatch):
    """Evaluate and export re-run on the same generator change no file: their times come from
    the training run (its record, or the generator file it wrote), not the clock."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cfg = config(project)
    if not Path(cfg.paths.classifier).is_file():
        run_train_classifier(cfg)
    run_train(cfg)
    metrics_dir, export_dir = Path(cfg.paths.metrics_dir), Path(cfg.paths.export_dir)
    runs = []
    for _ in range(2):
        run_stage("evaluate", project)
        run_stage("export", project)
        runs.append(snapshot(metrics_dir, export_dir))
        time.sleep(1.1)  # a second later: a time taken from the clock would show
    assert any(name.endswith(".png") for name in runs[0])
    assert any(name.endswith(DETACHED_MANIFEST_SUFFIX) for name in runs[0])
    assert_same_outputs(runs[0], runs[1])


def test_source_date_epoch_is_the_time_an_export_claims(project, monkeypatch):
    """With SOURCE_DATE_EPOCH set, export.json, the model card and the signed claims carry
    that time; two exports at different SOURCE_DATE_EPOCHs differ only where they say it."""
    cfg = config(project)
    if not Path(cfg.paths.run_dir, "generator.safetensors").is_file():
        if not Path(cfg.paths.classifier).is_file():
            run_train_classifier(cfg)
        run_train(cfg)
    export_dir = Path(cfg.paths.export_dir)
    claimed = {}
    for epoch, iso in ((0, "1970-01-01T00:00:00+00:00"), (1700000000, "2023-11-14T22:13:20+00:00")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
        record = run_export(cfg)
        assert record["provenance"]["created"] == iso
        written = json.loads((export_dir / EXPORT_RECORD).read_text())
        assert written["provenance"]["created"] == iso
        assert iso in (export_dir / MODEL_CARD).read_text()
        claimed[epoch] = written
    assert claimed[0] != claimed[1700000000]
