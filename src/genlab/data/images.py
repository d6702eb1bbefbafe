"""Decoding an image file someone else made: PNG and JPEG only, bounded, without surprises.

The format is checked by content (only Pillow's PNG and JPEG decoders are ever tried: a GIF,
BMP or TIFF named .png is refused by name), the pixel count is checked from the header before
anything is decoded (a 20 KB PNG can declare 169 megapixels), animated files are refused (which
frame would be "the" image?), 16-bit images are scaled to 8 bits rather than clipped, and
transparency is composited onto a stated background colour instead of dropped (which would show
whatever colour hides under alpha 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps

from genlab.errors import DatasetError

#: the only Pillow decoders genlab tries, for datasets and `genlab verify` alike. JPEG's decoder
#: also opens MPO, the multi-picture JPEGs many phones write (Pillow then names the format
#: "MPO"): their first frame, the primary image, is a plain JPEG and is what genlab reads.
FORMATS = ("PNG", "JPEG")
#: pixels `genlab verify` decodes per file at most (a 48-megapixel photo fits, 256 MiB as RGBA);
#: datasets have their own setting (data.source.max_pixels)
MAX_VERIFY_PIXELS = 2**26
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# First bytes of formats people rename to .png, to say what a refused file really is.
_SIGNATURES = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\0", "TIFF"),
    (b"MM\0*", "TIFF"),
    (b"RIFF", "WEBP (or another RIFF file)"),
    (b"\0\0\0\x0cjP", "JPEG 2000"),
    (b"\0\0\0", "HEIC/AVIF (or another ISO media file)"),
    (b"8BPS", "PSD"),
    (b"<", "SVG/HTML"),
)


def parse_colour(value: str | Sequence[int]) -> tuple[int, int, int]:
    """A background colour as RGB: a name or #hex that Pillow knows, or three 0-255 ints."""
    if isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value)
        except ValueError as error:
            raise ValueError(
                f"background must be a colour name, #rrggbb or [r, g, b], got {value!r}"
            ) from error
        return tuple(int(v) for v in rgb[:3])  # type: ignore[return-value]
    values = list(value)
    if len(values) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in values):
        raise ValueError(f"background must be [r, g, b] with 0-255 integers, got {value!r}")
    return values[0], values[1], values[2]


def _sniff(file: Path) -> str:
    with open(file, "rb") as handle:
        head = handle.read(16)
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), "unknown")


def open_image(file: Path, *, max_pixels: int, limit: str, name: str | None = None) -> Image.Image:
    """``file`` opened (header read, nothing decoded) by the PNG or JPEG decoder only, or a
    DatasetError that says why not; used for every image file genlab did not write itself.

    Only :data:`FORMATS` are tried, so no other Pillow plugin ever parses the file. The pixel
    count is checked from the header against ``max_pixels`` before anything is decoded (a
    20 KB PNG can declare 169 megapixels). ``limit`` is how messages name that limit and how to
    change it; ``name`` is how they call the file. The caller closes the image (``with``).
    """
    shown = name or str(file)
    with warnings.catch_warnings():
        # genlab's own limit below is the one that counts; Pillow's is only a warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file, formats=FORMATS)
        except Image.DecompressionBombError as error:
            raise DatasetError(f"{shown} has too many pixels ({error}); {limit}") from None
        except Image.UnidentifiedImageError:
            kind = _sniff(file)
            looks = "no image format" if kind == "unknown" else f"it looks like {kind}"
            raise DatasetError(
                f"{shown} is not a PNG or JPEG file by its content ({looks}); "
                f"genlab decodes PNG or JPEG only: convert it, or remove it"
            ) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DatasetError(
            f"{shown} is {width}x{height} = {width * height} pixels, more than {limit}"
        )
    return image


def decode_image(
    file: Path,
    *,
    mode: str,
    max_pixels: int,
    background: tuple[int, int, int],
    setting: str = "data.source",
    name: str | None = None,
) -> Image.Image:
    """``file`` decoded to ``mode`` ("L" or "RGB"), or a DatasetError that says why not.

    Broken files raise whatever Pillow raises while decoding (the caller names them).
    ``name`` is how messages call the file (its path inside the dataset).
    """
    shown = name or str(file)
    limit = (
        f"{setting}.max_pixels={max_pixels} (nothing was decoded): shrink the image, or raise "
        f"the limit if it is genuine"
    )
    with open_image(file, max_pixels=max_pixels, limit=limit, name=shown) as image:
        if image.format == "PNG" and getattr(image, "n_frames", 1) > 1:
            raise DatasetError(
                f"{shown} is an animated PNG ({image.n_frames} frames); genlab reads still "
                f"images only: save the frame you want as a plain PNG"
            )
        image.load()
        image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT:
        # 16-bit gray: keep the top 8 bits (scaled), instead of clipping to 0..255.
        values = np.asarray(image).astype(np.int64)
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
    return image.convert(mode)
