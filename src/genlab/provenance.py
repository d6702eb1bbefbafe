"""PNG writing that labels every generated image as machine-made (IPTC + XMP metadata) and
signs it (an embedded C2PA manifest).

Generated images leave the lab; the labels travel inside the file so that anyone (and any
tool that reads IPTC ``DigitalSourceType``) can tell it came from a trained model and which run.
Text chunks can be typed by anyone, so the finished file is also signed: the C2PA manifest
repeats the claim and binds it to every byte and to genlab's signing certificate.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from genlab import credentials
from genlab.errors import ConfigError
from genlab.io import atomic_path

# One spelling of each IPTC digital source type: credentials' (the C2PA manifest uses the same)
DIGITAL_SOURCE_TYPE = credentials.TRAINED
COMPOSITE_SOURCE_TYPE = credentials.COMPOSITE
# What the IPTC text of a genlab image may say: all generated, or generated beside real images
SOURCE_TYPES = (DIGITAL_SOURCE_TYPE, COMPOSITE_SOURCE_TYPE)
PNG_MIME = "image/png"
SOURCE_TYPE_KEY = "DigitalSourceType"
MACHINE_GENERATED_KEY = "genlab:machine_generated"
PREFIX = "genlab:"
XMP_KEY = "XML:com.adobe.xmp"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
GENLAB_NS = "urn:genlab:provenance:1.0#"
# What identifies the run that made an image or an export, in every record genlab writes
RUN_KEYS = ("model", "run_id", "training_fingerprint", "code_version", "dataset_hash")
#: What a generated image made by one class of a class-conditional model records of it: the
#: class's name and its index (`genlab generate --class`, per-class folders, balanced seeds)
CLASS_KEYS = ("class", "class_index")
# The reproducible-builds convention: integer seconds since the epoch, the time outputs claim
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
_PNG_KEYWORD_MAX = 79  # PNG spec limit on text-chunk keywords
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

ImageLike = torch.Tensor | np.ndarray


def claimed_time(recorded: str | None = None, written: str | os.PathLike | None = None) -> str:
    """The time an output claims (its ``created``), as ISO 8601 UTC seconds: the one home.

    ``SOURCE_DATE_EPOCH`` when set (reproducible builds: integer seconds since the epoch);
    else ``recorded``, a time the run itself recorded (its start, its finish); else the
    modification time of ``written``, the file the run wrote that this output is made from.
    Never the clock at write time: re-running a stage on the same inputs then writes the same
    bytes, and DVC skips everything downstream. ``ValueError`` when none of the three is given.
    """
    text = os.environ.get(SOURCE_DATE_EPOCH)
    if text is not None and text.strip():
        try:
            seconds = int(text.strip())
            if seconds < 0:
                raise ValueError("before the epoch")
            moment = datetime.fromtimestamp(seconds, timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(
                f"{SOURCE_DATE_EPOCH}={text!r} is not a time: set it to whole seconds since "
                f"1970-01-01 UTC (e.g. `export {SOURCE_DATE_EPOCH}=$(git log -1 --format=%ct)`)"
                f" or unset it"
            ) from None
        return moment.isoformat(timespec="seconds")
    if recorded:  # from a run record, someone else's file: only a real time is taken
        try:  # a time that parses may still not convert (year 1 at +05:00): OverflowError
            moment = datetime.fromisoformat(str(recorded)[:64])
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
        except (ValueError, OverflowError):
            pass
    if written is not None:
        moment = datetime.fromtimestamp(int(os.stat(written).st_mtime), timezone.utc)
        return moment.isoformat(timespec="seconds")
    raise ValueError("claimed_time needs a recorded time or a written file when unset")


def save_png(
    image: ImageLike,
    path: str | os.PathLike,
    provenance: Mapping[str, str],
    watermark: bool = True,
    source_type: str = credentials.TRAINED,
) -> Path:
    """Write one (C,H,W) image (float in [-1, 1] or uint8; C = 1 or 3) as a labelled, signed PNG.

    Each ``provenance`` entry (model, run_id, training_fingerprint, code_version, created, ...) is
    stored as ``genlab:<key>``, next to IPTC ``DigitalSourceType`` (``source_type``:
    ``credentials.TRAINED``, or ``credentials.COMPOSITE`` for an image that puts real images
    beside generated ones) and an XMP packet. With ``watermark``, images large enough and in
    colour also get the invisible pixel watermark; ``genlab:watermark`` says which happened.

    Order: watermark, then the text chunks, then the C2PA signature over the finished bytes
    (a ``c2pa.created`` action with ``source_type`` and an assertion with every entry), so
    that nothing is written into the file after it is signed.
    """
    from genlab import watermark as pixel_mark

    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {SOURCE_TYPES}, got {source_type!r}")
    array, mode = _to_pil_array(image)
    entries = dict(provenance)
    if watermark:
        reason = pixel_mark.why_not_markable(array)
        if reason is None:
            array = pixel_mark.embed(array, entries.get("run_id"))
            entries["watermark"] = (
                f"invisible-watermark {pixel_mark.METHOD}: b'gl' + run id prefix (32 bits)"
            )
        else:
            entries["watermark"] = f"none: {reason}"
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG", pnginfo=_png_info(entries, source_type))
    target = Path(path)
    signed = credentials.sign_bytes(
        buffer.getvalue(), PNG_MIME, entries, title=target.name, source_type=source_type
    )
    with atomic_path(target) as tmp:
        tmp.write_bytes(signed)
    return target


def save_grid(
    images: ImageLike,
    path: str | os.PathLike,
    provenance: Mapping[str, str],
    nrow: int | None = None,
    watermark: bool = True,
    source_type: str = credentials.TRAINED,
) -> Path:
    """Tile (N,C,H,W) images in [-1, 1] into one labelled, signed PNG (see :func:`save_png`);
    ``nrow`` defaults to ~sqrt(N)."""
    from torchvision.utils import make_grid  # lazily, after genlab.io ran genlab's CPU shim

    batch = torch.as_tensor(images).detach().float().cpu()
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1|3, H, W), got {tuple(batch.shape)}")
    per_row = nrow or math.ceil(math.sqrt(batch.shape[0]))
    grid = make_grid(batch.clamp(-1, 1), nrow=per_row, padding=2, pad_value=-1.0)
    if batch.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats gray to 3 channels; keep the PNG in mode "L"
    return save_png(grid, path, provenance, watermark=watermark, source_type=source_type)


def read_provenance(path: str | os.PathLike) -> dict[str, str]:
    """Provenance written by :func:`save_png`: ``DigitalSourceType``, ``machine_generated``
    and the ``genlab:`` entries with the prefix dropped; ``{}`` for an unlabelled image.

    For genlab's own files (tests, reports); a file from someone else is opened with the
    checks of ``genlab.data.images.open_image`` and read with :func:`provenance_of`."""
    with Image.open(path) as img:
        img.load()
        return provenance_of(img)


def provenance_of(image: Image.Image) -> dict[str, str]:
    """:func:`read_provenance` of an image already opened and loaded (its text chunks are
    read as the pixels are decoded), so that a file is opened and decoded once."""
    text = dict(getattr(image, "text", {}) or {})
    found: dict[str, str] = {}
    if SOURCE_TYPE_KEY in text:
        found[SOURCE_TYPE_KEY] = str(text[SOURCE_TYPE_KEY])
    for key, value in text.items():
        if key.startswith(PREFIX):
            found[key[len(PREFIX) :]] = str(value)
    return found


def _to_pil_array(image: ImageLike) -> tuple[np.ndarray, str]:
    """(C,H,W) float [-1,1] or uint8 -> (H,W[,3]) uint8 and the PIL mode ("L" or "RGB")."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1|3, H, W), got {array.shape}")
    if array.dtype != np.uint8:
        scaled = (np.clip(array.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
        array = np.round(scaled).astype(np.uint8)
    if array.shape[0] == 1:
        return np.ascontiguousarray(array[0]), "L"
    return np.ascontiguousarray(array.transpose(1, 2, 0)), "RGB"


def _png_info(provenance: Mapping[str, str], source_type: str) -> PngImagePlugin.PngInfo:
    """iTXt chunks (UTF-8 safe) for the labels, the provenance and the XMP packet."""
    entries = {str(k): str(v) for k, v in provenance.items()}
    info = PngImagePlugin.PngInfo()
    info.add_itxt(SOURCE_TYPE_KEY, source_type)
    info.add_itxt(MACHINE_GENERATED_KEY, "true")
    for key, value in entries.items():
        chunk_key = PREFIX + key
        if len(chunk_key) > _PNG_KEYWORD_MAX or chunk_key == MACHINE_GENERATED_KEY:
            raise ValueError(f"provenance key {key!r} is reserved or too long for PNG")
        info.add_itxt(chunk_key, value)
    info.add_itxt(XMP_KEY, _xmp_packet(entries, source_type))
    return info


def _xmp_packet(entries: Mapping[str, str], source_type: str) -> str:
    """An XMP packet with IPTC ``DigitalSourceType`` and the genlab fields as elements."""
    fields = {"machine_generated": "true", **entries}
    lines = [
        f"   <genlab:{key}>{escape(value)}</genlab:{key}>"
        for key, value in fields.items()
        if _XML_NAME.match(key)  # keys that are not XML names stay in the text chunks only
    ]
    return "\n".join(
        [
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
            ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
            f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"'
            f' xmlns:genlab="{GENLAB_NS}">',
            f"   <Iptc4xmpExt:DigitalSourceType>{escape(source_type)}"
            "</Iptc4xmpExt:DigitalSourceType>",
            *lines,
            "  </rdf:Description>",
            " </rdf:RDF>",
            "</x:xmpmeta>",
            '<?xpacket end="w"?>',
        ]
    )
