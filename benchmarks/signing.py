"""What C2PA content credentials cost: time and bytes per signed image and per model file.

Run: `python benchmarks/signing.py` (about 30 s). Prints a table: for a 32x32 gray sample, an
8x8 grid of them (274x274 px, as the training and export grids) and a 512x512 colour image,
the plain PNG save (Pillow, with genlab's provenance text chunks) against the same bytes then
signed with `credentials.sign_bytes` (mean and p95 over 200 images), the bytes the manifest
adds, and the time to read and verify the credentials; then a detached manifest
(`credentials.sign_detached`) for a ~1 MB model file. Keys come from a throwaway
GENLAB_KEYS_DIR, so the real signing identity is never touched.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
from _common import machine, table
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sklearn.datasets import load_digits

IMAGES = 200  # per kind of image
MODEL_REPEATS = 50
MODEL_BYTES = 1 << 20
PROVENANCE = {
    "model": "dcgan",
    "run_id": "ab12cd34",
    "training_fingerprint": "0123456789abcdef",
    "code_version": "0123456789ab",
    "dataset_hash": "f" * 64,
    "created": "2026-11-26T12:00:00+00:00",
    "seed": "0",
}


@cache
def all_digits() -> np.ndarray:
    """The default dataset's 1797 digits at 32x32, uint8 gray."""
    import torch

    digits = torch.from_numpy(load_digits().images).float()[:, None] / 16
    digits = torch.nn.functional.interpolate(digits, size=32, mode="bilinear")
    return (digits[:, 0] * 255).round().clamp(0, 255).byte().numpy()


def digit_images(count: int, seed: int) -> np.ndarray:
    """``count`` digits picked at random (``seed``)."""
    digits = all_digits()
    return digits[np.random.default_rng(seed).integers(0, len(digits), count)]


def sample(index: int) -> np.ndarray:
    return digit_images(1, index)[0]


def grid(index: int) -> np.ndarray:
    """8x8 samples with 2 px padding, as torchvision's make_grid lays them out: 274x274."""
    tiles = digit_images(64, index)
    out = np.zeros((274, 274), np.uint8)
    for k, tile in enumerate(tiles):
        row, col = divmod(k, 8)
        out[2 + row * 34 : 34 + row * 34, 2 + col * 34 : 34 + col * 34] = tile
    return out


def colour_512(index: int) -> np.ndarray:
    """A 512x512 RGB image: a 4x4 grid of tinted digits, scaled up, plus a little noise."""
    rng = np.random.default_rng(index)
    tiles = digit_images(16, index).astype(np.float32) / 255
    tints = rng.random((16, 3, 2), dtype=np.float32)
    canvas = np.zeros((128, 128, 3), np.float32)
    for k, tile in enumerate(tiles):
        row, col = divmod(k, 4)
        rgb = tile[..., None] * tints[k, :, 0] + (1 - tile[..., None]) * tints[k, :, 1]
        canvas[row * 32 : row * 32 + 32, col * 32 : col * 32 + 32] = rgb
    big = np.asarray(Image.fromarray((canvas * 255).astype(np.uint8)).resize((512, 512)))
    noise = rng.integers(-3, 4, big.shape)
    return np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def plain_png(array: np.ndarray) -> bytes:
    """What genlab writes before signing: the pixels and one text chunk per provenance entry."""
    info = PngInfo()
    for key, value in PROVENANCE.items():
        info.add_text(f"genlab:{key}", value)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def ms(seconds: list[float]) -> tuple[str, str]:
    values = sorted(s * 1000 for s in seconds)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.fmean(values):.2f}", f"{p95:.2f}"


def measure_images(name: str, make) -> list[object]:
    from genlab import credentials

    arrays = [make(index) for index in range(IMAGES)]
    save_s, sign_s, read_s, plain_sizes, added = [], [], [], [], []
    anchors = credentials.trust_anchors()
    for array in arrays:
        started = time.perf_counter()
        data = plain_png(array)
        saved = time.perf_counter()
        signed = credentials.sign_bytes(data, "image/png", PROVENANCE, title=f"{name}.png")
        done = time.perf_counter()
        found = credentials.read_credentials(signed, "image/png", anchors=anchors)
        read = time.perf_counter()
        assert found.state == credentials.TRUSTED, (found.state, found.codes)
        save_s.append(saved - started)
        sign_s.append(done - saved)
        read_s.append(read - done)
        plain_sizes.append(len(data))
        added.append(len(signed) - len(data))
    height, width = arrays[0].shape[:2]
    kind = "RGB" if arrays[0].ndim == 3 else "gray"
    return [
        f"{name} ({width}x{height} {kind})",
        *ms(save_s),
        *ms(sign_s),
        f"{statistics.fmean(plain_sizes) / 1024:.1f} KB",
        f"+{statistics.fmean(added) / 1024:.1f} KB",
        ms(read_s)[0],
    ]


def measure_model(folder: Path) -> list[object]:
    from genlab import credentials

    model = folder / "generator.onnx"
    model.write_bytes(np.random.default_rng(0).integers(0, 256, MODEL_BYTES, np.uint8).tobytes())
    sign_s, read_s = [], []
    anchors = credentials.trust_anchors()
    for _ in range(MODEL_REPEATS):
        started = time.perf_counter()
        manifest = credentials.sign_detached(model, PROVENANCE)
        done = time.perf_counter()
        found = credentials.read_credentials(
            model.read_bytes(), credentials.mime_type(model), manifest.read_bytes(), anchors
        )
        read_s.append(time.perf_counter() - done)
        assert found.state == credentials.TRUSTED, (found.state, found.codes)
        sign_s.append(done - started)
    return [
        f"model file, detached {manifest.name} (1 MB, {MODEL_REPEATS} runs)",
        "-",
        "-",
        *ms(sign_s),
        f"{MODEL_BYTES / 1024:.0f} KB",
        f"{manifest.stat().st_size / 1024:.1f} KB (separate file)",
        ms(read_s)[0],
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["GENLAB_KEYS_DIR"] = str(Path(scratch) / "keys")
        from genlab import credentials

        credentials.init_keys(Path(scratch) / "keys")
        credentials.sign_bytes(plain_png(sample(0)), "image/png", PROVENANCE, "warm-up.png")
        rows = [
            measure_images("sample", sample),
            measure_images("8x8 grid", grid),
            measure_images("colour image", colour_512),
            measure_model(Path(scratch)),
        ]
    print(machine())
    print(f"{IMAGES} images of each kind; times in ms (mean, p95)")
    header = [
        "file",
        "PNG save mean",
        "PNG save p95",
        "sign mean",
        "sign p95",
        "unsigned size",
        "bytes added",
        "read + verify mean",
    ]
    print(table(header, rows))


if __name__ == "__main__":
    main()
