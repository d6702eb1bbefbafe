"""The pixel watermark: embedded in large colour images, found after the metadata is stripped,
and honestly reported as absent where the library cannot mark (small or gray images)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from genlab.provenance import read_provenance, save_grid, save_png
from genlab.verify import verify_image

RUN_ID = "ab12cd34"
PROVENANCE = {
    "model": "dcgan",
    "run_id": RUN_ID,
    "training_fingerprint": "c0ffee",
    "code_version": "v1",
}


def colour_digit_grid() -> torch.Tensor:
    """64 coloured 32 px digits in [-1, 1]: a 274 px grid, like a CIFAR sample grid."""
    digits = torch.from_numpy(load_digits().images[:64]).float()[:, None] / 16
    digits = torch.nn.functional.interpolate(digits, size=32, mode="bilinear")
    tint = torch.rand(64, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return (digits * tint + (1 - digits) * tint.flip(1)) * 2 - 1


def reencoded(path, target):
    """What an upload pipeline does: decode the pixels, write a new PNG without metadata."""
    with Image.open(path) as image:
        Image.fromarray(np.asarray(image)).save(target)
    return target


def test_colour_grid_carries_a_watermark_that_survives_stripping(tmp_path):
    path = save_grid(colour_digit_grid(), tmp_path / "grid.png", PROVENANCE)
    assert read_provenance(path)["watermark"].startswith("invisible-watermark dwtDctSvd")
    report = verify_image(path)
    assert report["watermark"] == {"found": True, "run_id_prefix": "ab12", "matches_run_id": True}

    stripped = verify_image(reencoded(path, tmp_path / "stripped.png"))
    assert stripped["digital_source_type"] is None and stripped["provenance"] == {}
    assert stripped["watermark"]["found"] and stripped["watermark"]["run_id_prefix"] == "ab12"
    assert stripped["machine_generated"], "the pixels alone still say genlab made it"


def test_watermark_is_nearly_invisible(tmp_path):
    grid = colour_digit_grid()
    marked = save_grid(grid, tmp_path / "marked.png", PROVENANCE)
    plain = save_grid(grid, tmp_path / "plain.png", PROVENANCE, watermark=False)
    difference = np.abs(
        np.asarray(Image.open(marked)).astype(float) - np.asarray(Image.open(plain)).astype(float)
    )
    peak_signal_to_noise = 10 * np.log10(255**2 / np.mean(difference**2))
    assert peak_signal_to_noise > 30, peak_signal_to_noise  # 32.8 dB measured on this grid
    assert not verify_image(plain)["watermark"]["found"], "no false positive on unmarked pixels"


def test_small_or_gray_images_say_they_carry_no_watermark(tmp_path):
    small = save_png(colour_digit_grid()[0], tmp_path / "small.png", PROVENANCE)
    assert "smaller than 256x256" in read_provenance(small)["watermark"]
    gray = save_grid(colour_digit_grid()[:, :1], tmp_path / "gray.png", PROVENANCE)
    assert read_provenance(gray)["watermark"].startswith("none: gray image")
    report = verify_image(gray)
    assert report["machine_generated"] and not report["watermark"]["found"]
    assert "gray image" in report["watermark"]["reason"]
