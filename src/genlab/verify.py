"""Was this file made by genlab, and by which run? What can be proved first, then what is claimed.

A signed C2PA manifest (embedded in a PNG or JPEG, or a detached ``<file>.c2pa`` beside a model
file) is the only evidence: its signature binds the claim to every byte of the file and to a
certificate. Each file gets one verdict: Trusted (valid, the signer chains to a trust anchor
the user configured), Valid but untrusted (valid, unknown signer), Invalid (changed after
signing, or a broken manifest: c2pa's failure codes say which) or No credentials. Only for the
last are the IPTC text label and the pixel watermark read, and they are reported as what they
are: unsigned claims anyone can write, which prove nothing.

Files come from anywhere: nothing here raises on a hostile file, every read is capped in bytes
(and an image in pixels, before decoding), and every string taken from a file is shown through
:func:`genlab.checks.printable`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genlab import credentials
from genlab.checks import printable
from genlab.data.images import MAX_VERIFY_PIXELS, open_image
from genlab.errors import DatasetError
from genlab.provenance import (
    CLASS_KEYS,
    COMPOSITE_SOURCE_TYPE,
    DIGITAL_SOURCE_TYPE,
    RUN_KEYS,
    SOURCE_TYPE_KEY,
    provenance_of,
)

# The four verdicts, one per file
TRUSTED = "Trusted"
VALID_UNTRUSTED = "Valid but untrusted"
INVALID = "Invalid"
NO_CREDENTIALS = "No credentials"
_VERDICT_OF_STATE = {
    credentials.TRUSTED: TRUSTED,
    credentials.VALID: VALID_UNTRUSTED,
    credentials.INVALID: INVALID,
    credentials.NO_CREDENTIALS: NO_CREDENTIALS,
}

# Byte caps on what verify reads into memory. genlab's images are KBs to a few MBs (a PNG at the
# pixel cap, 2**26 RGB pixels, is at most ~200 MB uncompressed); its exports are MBs; a manifest
# is ~3 KB (0.1-2 MB with a thumbnail).
MAX_IMAGE_BYTES = 256 << 20
MAX_MODEL_BYTES = 1 << 30
MAX_MANIFEST_BYTES = 16 << 20
# Files read as images whatever sits beside them; files read as models even without a manifest
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".ts", ".ckpt", ".safetensors", ".bin")
# A hostile signed manifest may hold thousands of fields: show this many, then a count
MAX_FIELDS_SHOWN = 40
# genlab's own codes, beside c2pa's, for a detached manifest that cannot be read at all
MANIFEST_TOO_LARGE = "genlab.manifest.tooLarge"
MANIFEST_UNREADABLE = "genlab.manifest.unreadable"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _size(limit: int) -> str:
    return f"{limit >> 30} GiB" if limit >= 1 << 30 else f"{limit >> 20} MiB"


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, str]] | str:
    """(pixels, provenance) of a PNG or JPEG file, or one sentence saying why it cannot be
    read: files handed to `genlab verify` come from anywhere, so nothing here raises.

    The file is opened once, by the PNG or JPEG decoder only, its pixel count checked from the
    header; pixels and provenance both come from that one decode."""
    file = Path(path)
    problem = _image_file_problem(file)
    if problem:
        return problem
    limit = f"genlab verify's limit of {MAX_VERIFY_PIXELS:,} (nothing was decoded)"
    try:
        image = open_image(file, max_pixels=MAX_VERIFY_PIXELS, limit=limit, name=str(file))
    except DatasetError as error:
        return str(error).removeprefix(f"{file} ")
    except Exception as error:  # Pillow raises many types on hostile headers
        return f"is not a PNG or JPEG image ({_why(error, file)})"
    with image:
        try:
            image.load()
            pixels = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
            provenance = provenance_of(image)
        except Exception as error:  # truncated or corrupt data: Pillow raises many types
            return f"could not be decoded: truncated or corrupt ({_why(error, file)})"
    return pixels, provenance


def _image_file_problem(file: Path) -> str | None:
    """Why ``file`` is not even worth opening as an image (missing, a folder, empty, too many
    bytes), or None."""
    if not file.exists():
        return "does not exist (no such file)"
    if file.is_dir():
        return "is a directory, not an image file"
    if not file.is_file():
        return "is not a regular file"
    size = file.stat().st_size
    if size == 0:
        return "is empty (0 bytes), not an image"
    if size > MAX_IMAGE_BYTES:
        return (
            f"is {size:,} bytes, more than genlab verify's limit of {_size(MAX_IMAGE_BYTES)} "
            "for an image (nothing was decoded)"
        )
    return None


def _why(error: Exception, file: Path) -> str:
    """Pillow's reason on one line, without the path (the caller names the file once)."""
    text = str(error).replace(f"'{file}'", "").replace(str(file), "")
    return " ".join(text.split())[:200] or type(error).__name__


def read_capped(path: Path, limit: int, what: str) -> tuple[bytes, os.stat_result] | str:
    """The bytes of a regular file of at most ``limit`` bytes and its stat, or one sentence
    saying why not. Opened non-blocking, so a FIFO put in the file's place cannot hang verify;
    read at most ``limit + 1`` bytes, so a file that grows meanwhile is refused, not slurped."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return "does not exist (no such file)"
    except IsADirectoryError:
        return f"is a directory, not a {what}"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            return f"is a directory, not a {what}"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        too_large = (
            f"is more than genlab verify's limit of {_size(limit)} for a {what} (nothing was "
            "verified)"
        )
        if info.st_size > limit:
            return too_large.replace("is more", f"is {info.st_size:,} bytes, more", 1)
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            return f"cannot be read ({error.strerror})"
    if len(data) > limit:
        return too_large
    return data, info


def _same_file(before: os.stat_result, path: Path) -> bool:
    try:
        after = path.stat()
    except OSError:
        return False
    fields = ("st_dev", "st_ino", "st_size", "st_mtime_ns")
    return all(getattr(before, key) == getattr(after, key) for key in fields)


def is_model_file(path: str | os.PathLike) -> bool:
    """A file verified against its detached manifest: a model file by its suffix, or any
    non-image name with ``<file>.c2pa`` beside it. PNG and JPEG names (and anything else, for
    today's "not a PNG or JPEG" message) are read as images with an embedded manifest."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return False
    return suffix in MODEL_SUFFIXES or credentials.detached_manifest_path(file).exists()


def verify_file(path: str | os.PathLike, anchors: Sequence[bytes] | None = None) -> dict[str, Any]:
    """:func:`verify_model` or :func:`verify_image`, by :func:`is_model_file`."""
    if is_model_file(path):
        return verify_model(path, anchors)
    return verify_image(path, anchors)


def verify_image(path: str | os.PathLike, anchors: Sequence[bytes] | None = None) -> dict[str, Any]:
    """The verdict of a PNG or JPEG's embedded manifest, then what the file says about itself
    unsigned: the IPTC label, provenance text fields and the pixel watermark.

    ``anchors``: PEM trust anchors (default :func:`genlab.credentials.trust_anchors`). A file
    that is not a readable PNG or JPEG gives ``{"path", "error", "machine_generated": False}``
    instead, ``error`` saying why (bad input, not a verdict); but one whose pixels cannot be
    decoded while it carries a manifest (a flipped byte in the compressed pixels) is reported
    with the manifest's verdict, Invalid, and c2pa's code."""
    from genlab import watermark

    file = Path(path)
    problem = _image_file_problem(file)
    read = problem or read_capped(file, MAX_IMAGE_BYTES, "image")
    if isinstance(read, str):
        return _bad(path, read)
    data, info = read
    mime = "image/png" if data.startswith(_PNG_MAGIC) else "image/jpeg"
    image_like = data.startswith((_PNG_MAGIC, _JPEG_MAGIC))
    found_credentials = (
        credentials.read_credentials(data, mime, anchors=_anchors(anchors))
        if image_like
        else credentials.Credentials(credentials.NO_CREDENTIALS)
    )
    found = read_image(file)
    if not _same_file(info, file):
        return _bad(path, "changed while genlab verify was reading it: run it again")
    if isinstance(found, str):
        if not _manifest_was_read(found_credentials):
            return _bad(path, found)  # a broken file, not a broken signature: bad input
        pixels, provenance = None, {}
        mark: dict[str, Any] = {
            "found": False,
            "run_id_prefix": None,
            "reason": f"pixels not decoded: the file {found}",
        }
    else:
        pixels, provenance = found
        mark = watermark.detect(pixels)
    fields = {k: v for k, v in provenance.items() if k != SOURCE_TYPE_KEY}
    signed = found_credentials.state in (credentials.TRUSTED, credentials.VALID)
    run_id = (found_credentials.genlab if signed else fields).get("run_id")
    if mark["found"] and run_id and mark["run_id_prefix"]:
        mark["matches_run_id"] = run_id.startswith(mark["run_id_prefix"])
    labelled = provenance.get(SOURCE_TYPE_KEY) in (DIGITAL_SOURCE_TYPE, COMPOSITE_SOURCE_TYPE)
    return {
        "path": str(path),
        "kind": "image",
        "verdict": _VERDICT_OF_STATE[found_credentials.state],
        "credentials": found_credentials.as_dict(),
        # the unsigned claims (anyone can write them): the IPTC label, text fields, watermark
        "machine_generated": labelled or bool(mark["found"]),
        "digital_source_type": provenance.get(SOURCE_TYPE_KEY),
        "provenance": fields,
        "watermark": mark,
    }


def verify_model(path: str | os.PathLike, anchors: Sequence[bytes] | None = None) -> dict[str, Any]:
    """The verdict of a model file (ONNX, TorchScript, anything) against the detached manifest
    ``<file>.c2pa`` beside it: No credentials without one, Invalid when the manifest cannot be
    read or does not match the file's bytes. A model file that cannot be read at all gives
    ``{"path", "error", ...}`` as :func:`verify_image` does."""
    file = Path(path)
    read = read_capped(file, MAX_MODEL_BYTES, "model file")
    if isinstance(read, str):
        return _bad(path, read)
    data, info = read
    manifest_path = credentials.detached_manifest_path(file)
    report: dict[str, Any] = {"path": str(path), "kind": "model", "manifest": str(manifest_path)}
    if not os.path.lexists(manifest_path):
        found = credentials.Credentials(credentials.NO_CREDENTIALS)
    else:
        manifest = read_capped(manifest_path, MAX_MANIFEST_BYTES, "C2PA manifest")
        if isinstance(manifest, str):
            code = MANIFEST_TOO_LARGE if "limit" in manifest else MANIFEST_UNREADABLE
            found = credentials.Credentials(
                credentials.INVALID, [code], [f"{manifest_path.name} {manifest}"]
            )
        else:
            found = credentials.read_credentials(
                data, credentials.mime_type(file), manifest[0], _anchors(anchors)
            )
    if not _same_file(info, file):
        return _bad(path, "changed while genlab verify was reading it: run it again")
    report["verdict"] = _VERDICT_OF_STATE[found.state]
    report["credentials"] = found.as_dict()
    report["machine_generated"] = False  # a model file carries no unsigned label genlab reads
    return report


def _manifest_was_read(found: credentials.Credentials) -> bool:
    """c2pa parsed a manifest and validated it (its codes are validation codes such as
    ``assertion.dataHash.mismatch``), rather than failing to parse the file at all (the codes
    ``credentials.read_credentials`` makes from an exception start with ``c2pa.``)."""
    if found.state in (credentials.TRUSTED, credentials.VALID):
        return True
    return any(not code.startswith("c2pa.") for code in found.codes)


def _bad(path: str | os.PathLike, error: str) -> dict[str, Any]:
    return {"path": str(path), "error": error, "machine_generated": False}


def _anchors(anchors: Sequence[bytes] | None) -> Sequence[bytes]:
    return credentials.trust_anchors() if anchors is None else anchors


def passes(report: dict[str, Any], allow_untrusted: bool = False) -> bool:
    """Whether a report counts as verified: Trusted, or with ``allow_untrusted`` at least
    Valid. An unsigned label or watermark never does."""
    accepted = (TRUSTED, VALID_UNTRUSTED) if allow_untrusted else (TRUSTED,)
    return report.get("verdict") in accepted


# -- text for the terminal: every string taken from a file goes through printable() -------------


def _value(value: Any) -> str:
    """A manifest value (a string, or a JSON object from a hostile manifest) on one line."""
    if isinstance(value, dict):
        parts = [f"{printable(str(k), 60)} {printable(str(v), 120)}" for k, v in value.items()]
        return printable(", ".join(parts), 400)
    return printable(str(value), 400)


def _source_type_note(source_type: str) -> str:
    return {
        DIGITAL_SOURCE_TYPE: " (made by a trained model)",
        COMPOSITE_SOURCE_TYPE: " (generated images beside real ones)",
    }.get(source_type, "")


def _signed_facts(found: dict[str, Any]) -> list[str]:
    signer = found.get("signer") or {}
    lines = []
    if signer:
        who = printable(signer.get("common_name", "unknown"))
        issuer = printable(signer.get("issuer", "unknown"))
        lines.append(f"  signed by: {who} (issuer {issuer}, {printable(signer.get('alg', '?'))})")
    action = found.get("action") or {}
    lines.append("  signed facts:")
    if action.get("action"):
        lines.append(f"    action: {_value(action['action'])}")
    if action.get("digitalSourceType"):
        source = str(action["digitalSourceType"])
        lines.append(f"    digital source type: {_value(source)}{_source_type_note(source)}")
    if action.get("softwareAgent"):
        lines.append(f"    software agent: {_value(action['softwareAgent'])}")
    genlab = found.get("genlab") or {}
    order = [*RUN_KEYS, "seed", *CLASS_KEYS, "created"]
    keys = [k for k in order if k in genlab] + sorted(k for k in genlab if k not in order)
    for key in keys[:MAX_FIELDS_SHOWN]:
        lines.append(f"    {printable(key, 60)}: {printable(genlab[key])}")
    if len(keys) > MAX_FIELDS_SHOWN:
        lines.append(f"    ... ({len(keys) - MAX_FIELDS_SHOWN} more fields; see --json)")
    return lines


def _claims_genlab(found: dict[str, Any]) -> bool:
    """The signed manifest says a trained model made the file, with genlab's assertion."""
    action = found.get("action") or {}
    return bool(found.get("genlab")) and action.get("digitalSourceType") in (
        DIGITAL_SOURCE_TYPE,
        COMPOSITE_SOURCE_TYPE,
    )


def _unsigned_claims(report: dict[str, Any]) -> list[str]:
    lines = ["  UNSIGNED claims (anyone can write these; they prove nothing):"]
    if report["digital_source_type"]:
        lines.append(f"    IPTC label: {printable(report['digital_source_type'])}")
    else:
        lines.append("    no provenance metadata (never written, or stripped)")
    for key in (*RUN_KEYS, "created", "seed", *CLASS_KEYS):
        if key in report["provenance"]:
            lines.append(f"    {key}: {printable(report['provenance'][key])}")
    return lines


def _watermark_line(mark: dict[str, Any], indent: str) -> str:
    if mark["found"]:
        match = mark.get("matches_run_id")
        note = {None: "", True: " (matches run_id)", False: " (differs from run_id!)"}[match]
        return f"{indent}pixel watermark: found, run id prefix {mark['run_id_prefix']}{note}"
    if mark.get("reason"):
        return f"{indent}pixel watermark: not checked ({mark['reason']})"
    return f"{indent}pixel watermark: not found"


def describe(report: dict[str, Any]) -> str:
    """A report as the lines `genlab verify` prints: the verdict and what it rests on."""
    lines = [f"{printable(report['path'], 1000)}:"]
    found = report["credentials"]
    verdict = report["verdict"]
    if report["kind"] == "model":
        lines.append(f"  detached manifest: {printable(report['manifest'], 1000)}")
    if verdict in (TRUSTED, VALID_UNTRUSTED):
        reason = {
            TRUSTED: "C2PA signature valid; the signer chains to a trust anchor you configured",
            VALID_UNTRUSTED: "C2PA signature valid, but the signer is not one you trust",
        }[verdict]
        lines.append(f"  credentials: {verdict} ({reason})")
        lines.extend(_signed_facts(found))
        if report["kind"] == "image":
            lines.append(_watermark_line(report["watermark"], "  "))
        made = "GENERATED by genlab" if _claims_genlab(found) else "no claim that genlab made it"
        if verdict == TRUSTED:
            lines.append(f"  verdict: Trusted: {made} (signed, signer trusted)")
        else:
            lines.append(
                f"  verdict: Valid but untrusted: signed by an unknown signer ({made} is only "
                "as good as that signer); trust its root with --trust-anchor if you know it"
            )
        return "\n".join(lines)
    if verdict == INVALID:
        lines.append(
            "  credentials: Invalid (the file changed after it was signed, or its manifest is "
            "damaged or forged)"
        )
        for code, why in zip(found["codes"], found["explanations"], strict=False):
            lines.append(f"  failed: {printable(code, 100)}: {printable(why, 300)}")
        lines.append(
            "  verdict: Invalid: TAMPERED or broken; nothing this file says can be trusted"
        )
        return "\n".join(lines)
    if report["kind"] == "model":
        lines.append(
            "  credentials: none (no detached manifest beside it: never signed, or not shipped "
            "with it)"
        )
        lines.append("  verdict: No credentials: nothing proves who made this file")
        return "\n".join(lines)
    lines.append("  credentials: none (no C2PA manifest: never signed, or stripped by re-encoding)")
    lines.extend(_unsigned_claims(report))
    lines.append(_watermark_line(report["watermark"], "    "))
    if report["machine_generated"]:
        lines.append(
            "  verdict: No credentials: UNSIGNED claim that genlab made it (label or watermark), "
            "not proof"
        )
    else:
        lines.append("  verdict: No credentials: NOT recognised (no label, no watermark)")
    return "\n".join(lines)
