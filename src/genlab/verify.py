"""Is this image machine-generated, and by which run? Metadata first, then the pixel mark."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genlab.provenance import (
    DIGITAL_SOURCE_TYPE,
    RUN_KEYS,
    SOURCE_TYPE_KEY,
    read_provenance,
)

#: the formats genlab writes (PNG) and the one a shared image is most often re-encoded to (JPEG;
#: MPO is how Pillow names the multi-picture JPEGs many phones write)
FORMATS = ("PNG", "JPEG", "MPO")
#: pixels decoded per file at most (a 48-megapixel photo fits); a bigger image, or a small file
#: that claims huge dimensions (a decompression bomb), is refused from its header, undecoded
MAX_PIXELS = 2**26


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, str]] | str:
    """(pixels, provenance) of a PNG or JPEG file, or one sentence saying why it cannot be
    read: files handed to `genlab verify` come from anywhere, so nothing here raises."""
    file = Path(path)
    if not file.exists():
        return "does not exist (no such file)"
    if file.is_dir():
        return "is a directory, not an image file"
    if not file.is_file():
        return "is not a regular file"
    if file.stat().st_size == 0:
        return "is empty (0 bytes), not an image"
    limit = f"genlab verify decodes {MAX_PIXELS:,} at most; not decoded"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"claims too many pixels (a decompression bomb?): {limit}"
    except Exception as error:  # Pillow raises many types on hostile headers
        return f"is not a PNG or JPEG image ({_why(error, file)})"
    with image:
        if image.format not in FORMATS:
            return f"is a {image.format} image, not PNG or JPEG"
        if image.width * image.height > MAX_PIXELS:
            return f"has {image.width}x{image.height} pixels: {limit}"
        try:
            image.load()
            pixels = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
            provenance = read_provenance(file)
        except Exception as error:  # truncated or corrupt data: Pillow raises many types
            return f"could not be decoded: truncated or corrupt ({_why(error, file)})"
    return pixels, provenance


def _why(error: Exception, file: Path) -> str:
    """Pillow's reason on one line, without the path (the caller names the file once)."""
    text = str(error).replace(f"'{file}'", "").replace(str(file), "")
    return " ".join(text.split())[:200] or type(error).__name__


def verify_image(path: str | os.PathLike) -> dict[str, Any]:
    """What the file says about itself: labels, provenance fields and the watermark check.

    A file that is not a readable PNG or JPEG gives ``{"path", "error", "machine_generated":
    False}`` instead, ``error`` saying why (bad input, not a verdict)."""
    from genlab import watermark

    found = read_image(path)
    if isinstance(found, str):
        return {"path": str(path), "error": found, "machine_generated": False}
    pixels, provenance = found
    mark = watermark.detect(pixels)
    labelled = provenance.get(SOURCE_TYPE_KEY) == DIGITAL_SOURCE_TYPE
    fields = {k: v for k, v in provenance.items() if k != SOURCE_TYPE_KEY}
    if mark["found"] and fields.get("run_id") and mark["run_id_prefix"]:
        mark["matches_run_id"] = fields["run_id"].startswith(mark["run_id_prefix"])
    return {
        "path": str(path),
        "machine_generated": labelled or bool(mark["found"]),
        "digital_source_type": provenance.get(SOURCE_TYPE_KEY),
        "provenance": fields,
        "watermark": mark,
    }


def printable(text: str, limit: int = 200) -> str:
    """Text from a file, safe for a terminal: control characters (escape sequences that could
    rewrite what the user sees) are shown escaped, and a long value is cut short."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= limit else f"{text[:limit]}..."


def describe(report: dict[str, Any]) -> str:
    lines = [f"{printable(report['path'], 1000)}:"]
    if report["digital_source_type"]:
        lines.append(f"  machine-generated (IPTC {printable(report['digital_source_type'])})")
    else:
        lines.append("  no provenance metadata (never written, or stripped)")
    for key in (*RUN_KEYS, "created", "seed"):
        if key in report["provenance"]:
            lines.append(f"  {key}: {printable(report['provenance'][key])}")
    mark = report["watermark"]
    if mark["found"]:
        match = mark.get("matches_run_id")
        note = {None: "", True: " (matches run_id)", False: " (differs from run_id!)"}[match]
        lines.append(f"  pixel watermark: found, run id prefix {mark['run_id_prefix']}{note}")
    elif mark.get("reason"):
        lines.append(f"  pixel watermark: not checked ({mark['reason']})")
    else:
        lines.append("  pixel watermark: not found")
    verdict = "GENERATED by genlab" if report["machine_generated"] else "NOT recognised"
    lines.append(f"  verdict: {verdict}")
    return "\n".join(lines)
