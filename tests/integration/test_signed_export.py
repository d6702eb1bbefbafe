"""Every model file the export stage writes carries a detached, signed C2PA manifest
(`<file>.c2pa`) bound to its bytes and naming its run; export.json and the model card name the
signing identity; `genlab generate` still loads the signed export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab import credentials
from genlab.cli import main
from genlab.errors import CredentialsError
from genlab.layout import DETACHED_MANIFEST_SUFFIX, run_name
from genlab.models.generator_file import save_generator
from genlab.stages.export import run_export

from ..conftest import compose_config_dir, tiny_model_overrides
from ..support.signing import write_self_signed

pytestmark = pytest.mark.timeout(300)

RUN_ID = "run-signed-export"
# StyleGAN-lite also exports its mapping and synthesis halves: six model files in all
MODEL_FILES = sorted(
    f"{part}.{kind}"
    for part in ("generator", "mapping", "synthesis")
    for kind in ("onnx", "torchscript.pt")
)


def export_config(root: Path):
    return compose_config_dir(
        "model=stylegan",
        *tiny_model_overrides("stylegan"),
        f"paths.run_dir={root / 'run'}",
        f"paths.export_dir={root / 'export'}",
        f"paths.metrics_dir={root / 'metrics'}",
        "logger=csv",
        "export.grid_images=4",
    )


def write_run(cfg) -> None:
    """generator.safetensors as the train stage writes it, for an untrained tiny StyleGAN
    (signing does not care whether the weights were trained; the export stage runs as is)."""
    from hydra.utils import instantiate

    module = instantiate(cfg.model)
    record = {
        "model": "stylegan",
        "run_id": RUN_ID,
        "training_fingerprint": "f" * 16,
        "code_version": "0123abc",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "data_meta": {"name": "digits", "image_size": 32, "channels": 1},
        "train": {"steps": 0},
    }
    network_config = OmegaConf.to_container(cfg.model[module.sampling_network_key], resolve=True)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True)
    save_generator(
        run_dir / "generator.safetensors", module.sampling_generator(), network_config, record
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signed-export")
    cfg = export_config(root)
    write_run(cfg)
    run_export(cfg)
    return root / "export"


def manifest_of(path: Path) -> bytes:
    return path.with_name(path.name + DETACHED_MANIFEST_SUFFIX).read_bytes()


def check(path: Path, data: bytes | None = None, manifest: bytes | None = None):
    return credentials.read_credentials(
        path.read_bytes() if data is None else data,
        credentials.mime_type(path),
        manifest_of(path) if manifest is None else manifest,
        credentials.trust_anchors(),
    )


def test_every_model_file_has_a_trusted_manifest_naming_its_run_and_bytes(exported):
    model_files = sorted(p.name for p in exported.iterdir() if p.suffix in (".onnx", ".pt"))
    assert model_files == MODEL_FILES
    record = json.loads((exported / "export.json").read_text())
    for name in MODEL_FILES:
        path = exported / name
        found = check(path)
        assert found.state == credentials.TRUSTED, (name, found.codes, found.explanations)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert found.genlab["sha256"] == digest, name
        assert found.genlab["file"] == name
        assert found.genlab["run_id"] == RUN_ID and found.genlab["model"] == "stylegan"
        assert found.genlab["created"] == record["provenance"]["created"]
        assert found.action["action"] == "c2pa.created"
        assert found.action["digitalSourceType"] == credentials.TRAINED
        assert record["credentials"]["files"][name] == {
            "manifest": name + DETACHED_MANIFEST_SUFFIX,
            "sha256": digest,
        }


@pytest.mark.parametrize("name", ["generator.onnx", "generator.torchscript.pt"])
def test_one_flipped_byte_makes_a_model_file_invalid(exported, name):
    data = bytearray((exported / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    found = check(exported / name, data=bytes(data))
    assert found.state == credentials.INVALID
    assert "assertion.dataHash.mismatch" in found.codes, found.codes


def test_a_manifest_does_not_vouch_for_another_file(exported):
    """The manifest of mapping.onnx, put beside generator.onnx, does not make it verify."""
    found = check(exported / "generator.onnx", manifest=manifest_of(exported / "mapping.onnx"))
    assert found.state == credentials.INVALID, found.state


def test_export_record_and_model_card_name_the_signing_identity(exported):
    identity = credentials.signing_identity()
    signed = json.loads((exported / "export.json").read_text())["credentials"]
    assert signed["trust_anchor_fingerprint"] == identity.fingerprint
    assert signed["signer_fingerprint"] == identity.signer_fingerprint
    assert sorted(signed["files"]) == MODEL_FILES
    card = (exported / "MODEL_CARD.md").read_text()
    section = card.split("## Content credentials\n\n", 1)[1].split("\n## ", 1)[0]
    assert f"`{identity.fingerprint}`" in section
    assert (
        f"genlab verify exports/{run_name('stylegan', 0)}/generator.onnx "
        f"exports/{run_name('stylegan', 0)}/samples.png --trust-anchor root.pem"
    ) in section
    assert "generator.onnx (generator.onnx.c2pa)" in section


def test_generate_loads_the_signed_export(exported, tmp_path):
    """The .c2pa files beside the graphs do not confuse the loader (StyleGAN's controls use
    mapping.onnx and synthesis.onnx from the same folder)."""
    argv = ["generate", str(exported / "generator.onnx"), "--out", str(tmp_path), "--seeds", "0-1"]
    assert main([*argv, "--psi", "0.5"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["seed_000000.png", "seed_000001.png"]


def test_an_identity_whose_manifests_do_not_verify_writes_no_export(tmp_path, monkeypatch):
    """An organisation's certificate that C2PA rejects (no Authority Key Identifier, no
    emailProtection EKU): the export fails with a CredentialsError and leaves no folder."""
    cert, key = write_self_signed(tmp_path / "org")
    monkeypatch.setenv(credentials.SIGNING_CERT_ENV, str(cert))
    monkeypatch.setenv(credentials.SIGNING_KEY_ENV, str(key))
    cfg = export_config(tmp_path)
    write_run(cfg)
    with pytest.raises(CredentialsError, match="cannot sign generator|does not verify"):
        run_export(cfg)
    assert not (tmp_path / "export").exists()
