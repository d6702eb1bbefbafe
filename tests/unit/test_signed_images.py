"""Every PNG genlab writes is signed: an embedded C2PA manifest, made after the watermark and the
text chunks, that verifies Trusted with genlab's own root and repeats the run's provenance."""

from __future__ import annotations

import statistics
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import credentials, watermark
from genlab.evaluation.memorization import save_pairs_grid
from genlab.provenance import XMP_KEY, read_provenance, save_grid, save_png
from genlab.training.callbacks import SampleGridCallback

from ..conftest import fit_for_steps, tiny_model_overrides
from .test_watermark import colour_digit_grid

RUN_ID = "ab12cd34"
PROVENANCE = {
    "model": "dcgan",
    "run_id": RUN_ID,
    "training_fingerprint": "c0ffee",
    "code_version": "0123abc",
    "seed": "7",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def credentials_of(path: Path) -> credentials.Credentials:
    return credentials.read_credentials(
        path.read_bytes(), "image/png", anchors=credentials.trust_anchors()
    )


def chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset of the chunk, length of its data) of every PNG chunk, in file order."""
    assert data.startswith(PNG_SIGNATURE)
    found, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        found.append((data[offset + 4 : offset + 8], offset, length))
        offset += 12 + length  # length, type, data, CRC
    return found


def assert_signed(path: Path, source_type: str, fields: dict[str, str]) -> credentials.Credentials:
    """Trusted, created by a trained model with ``source_type``, carrying ``fields``."""
    found = credentials_of(path)
    assert found.state == credentials.TRUSTED, (found.state, found.codes, found.explanations)
    assert found.action["action"] == credentials.CREATED_ACTION
    assert found.action["digitalSourceType"] == source_type
    assert found.action["softwareAgent"]["name"] == "genlab"
    assert found.genlab.items() >= fields.items(), found.genlab
    return found


def test_a_png_is_signed_trusted_and_its_labels_still_read(tmp_path):
    path = save_png(torch.rand(3, 32, 32) * 2 - 1, tmp_path / "seed_000007.png", PROVENANCE)
    found = assert_signed(path, credentials.TRAINED, PROVENANCE)
    assert found.action["softwareAgent"]["run_id"] == RUN_ID
    labels = read_provenance(path)
    assert labels["DigitalSourceType"] == credentials.TRAINED
    # the manifest carries exactly the entries written as text, the watermark's included
    written = {
        k: v for k, v in labels.items() if k not in ("DigitalSourceType", "machine_generated")
    }
    assert found.genlab == written and written["watermark"].startswith("none: image smaller")
    types = [kind for kind, _, _ in chunks(path.read_bytes())]
    assert b"caBX" in types and types.index(b"caBX") < types.index(b"IDAT"), types


def test_a_large_colour_grid_is_watermarked_and_signed_over_its_final_bytes(tmp_path):
    path = save_grid(colour_digit_grid(), tmp_path / "grid.png", PROVENANCE)
    with Image.open(path) as image:
        pixels = np.asarray(image)
        assert image.size[0] >= 256 and image.mode == "RGB"
        assert credentials.TRAINED in image.text[XMP_KEY], "the XMP packet is intact"
    mark = watermark.detect(pixels)
    assert mark["found"] and mark["run_id_prefix"] == RUN_ID[:4], mark
    found = assert_signed(path, credentials.TRAINED, PROVENANCE)
    assert found.genlab["watermark"].startswith("invisible-watermark")

    # the signature covers the watermarked pixels: one flipped byte of them breaks it
    data = bytearray(path.read_bytes())
    _, offset, length = next(c for c in chunks(bytes(data)) if c[0] == b"IDAT")
    data[offset + 8 + length // 2] ^= 0x01
    tampered = credentials.read_credentials(
        bytes(data), "image/png", anchors=credentials.trust_anchors()
    )
    assert tampered.state == credentials.INVALID, tampered


def test_grids_beside_real_images_are_signed_as_composites(tmp_path):
    pairs = torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8)
    path = save_pairs_grid(pairs, tmp_path / "dcgan_nearest_training.png", PROVENANCE)
    assert_signed(path, credentials.COMPOSITE, PROVENANCE)
    with Image.open(path) as image:
        assert image.text["DigitalSourceType"] == credentials.COMPOSITE
        assert f">{credentials.COMPOSITE}</Iptc4xmpExt:DigitalSourceType>" in image.text[XMP_KEY]
        assert credentials.TRAINED not in image.text[XMP_KEY]
    assert "watermark" not in read_provenance(path), "half of it is real: no machine-made mark"


def test_an_unknown_source_type_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="source_type"):
        save_png(torch.zeros(3, 8, 8), tmp_path / "x.png", PROVENANCE, source_type="photo")
    assert list(tmp_path.iterdir()) == []


def test_training_writes_signed_sample_and_reconstruction_grids(
    tmp_path, digits_dir, compose_config
):
    from hydra.utils import instantiate

    module = instantiate(compose_config("model=vae", *tiny_model_overrides("vae")).model)
    run = {**PROVENANCE, "model": "vae"}
    callback = SampleGridCallback(
        every_n_steps=2, num_images=16, out_dir=tmp_path, seed=0, provenance=run
    )
    fit_for_steps(module, digits_dir, steps=2, callbacks=[callback])

    samples = assert_signed(tmp_path / "step_000002.png", credentials.TRAINED, run)
    assert samples.genlab["step"] == "2" and "created" in samples.genlab
    reconstructions = tmp_path / "reconstructions_step_000002.png"
    assert_signed(reconstructions, credentials.COMPOSITE, {**run, "step": "2"})
    assert read_provenance(reconstructions)["DigitalSourceType"] == credentials.COMPOSITE


@pytest.mark.parametrize("kind", ["32px RGB", "274px RGB grid"])
def test_signing_adds_a_few_kilobytes_and_milliseconds_per_image(tmp_path, kind):
    """Issue 19's budget: ~3 KB and a few ms per image (c2pa's default thumbnail, off here,
    would add 0.1-2 MB). The figures are printed for docs/benchmarks.md."""
    image = torch.rand(3, 32, 32) * 2 - 1 if kind == "32px RGB" else colour_digit_grid()
    save = save_png if image.ndim == 3 else save_grid
    save(image, tmp_path / "warm.png", PROVENANCE)  # the identity and signer, made once
    data = (tmp_path / "warm.png").read_bytes()
    added = sum(12 + length for kind_, _, length in chunks(data) if kind_ == b"caBX")
    unsigned = b"".join(
        data[offset : offset + 12 + length]
        for kind_, offset, length in chunks(data)
        if kind_ != b"caBX"
    )
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        credentials.sign_bytes(PNG_SIGNATURE + unsigned, "image/png", PROVENANCE, "x.png")
        seconds.append(time.perf_counter() - started)
    per_image = statistics.median(seconds)
    print(f"\n{kind}: +{added} bytes on {len(data) - added}, {per_image * 1000:.1f} ms to sign")
    assert 0 < added < 16_000, added
    assert per_image < 0.25, per_image  # ~2-5 ms measured; loose for a shared CPU
