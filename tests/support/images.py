"""A small folder of real image files, as a user would bring: two classes of shapes, some gray,
one corrupt file and one duplicate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def shape_image(kind: str, seed: int, size: int = 72) -> Image.Image:
    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    colour = tuple(int(v) for v in rng.integers(120, 256, 3))
    image = Image.new("RGB", (size + 8 + int(rng.integers(0, 20)), size), background)
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(8, 24, 2))
    extent = int(rng.integers(28, 44))
    box = (x, y, x + extent, y + extent)
    (draw.ellipse if kind == "circles" else draw.rectangle)(box, fill=colour)
    return image


def write_shapes_folder(root: Path, per_class: int = 40) -> dict[str, object]:
    """Returns what was planted: the corrupt file's name and the duplicate pair."""
    for kind in ("circles", "squares"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = shape_image(kind, seed=index + (0 if kind == "circles" else 1000))
            if index % 5 == 0:
                image = image.convert("L")  # some gray files among the colour ones
            suffix = ".jpg" if index % 7 == 3 else ".png"
            image.save(root / kind / f"{kind}_{index:03d}{suffix}")
    duplicate = root / "squares" / "squares_copy.png"
    shutil.copy(root / "squares" / "squares_001.png", duplicate)
    corrupt = root / "circles" / "circles_broken.png"
    corrupt.write_bytes((root / "circles" / "circles_001.png").read_bytes()[:60])
    return {
        "corrupt": "circles/circles_broken.png",
        "duplicates": {"squares/squares_001.png", "squares/squares_copy.png"},
        "readable": 2 * per_class + 1,
    }
