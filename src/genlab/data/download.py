"""Downloading a file a config names by URL: bounded in bytes and time, checked as it streams.

A per-read socket timeout alone lets a server send one byte every few seconds forever, and a
missing or false Content-Length lets it send without end. So a download has a byte cap (checked
against Content-Length first, then against the bytes received), an overall deadline, and its
sha256 computed while streaming into ``<name>.partial``; the file is moved into place only when
the hash matches. URLs in messages go through :func:`genlab.urls.redact_url`; whatever the
server sent (a garbage status line, a broken chunked body) is a one-line ``DatasetError`` with
the server's bytes escaped (:func:`genlab.checks.printable`), never a traceback.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from genlab.checks import printable
from genlab.errors import DatasetError
from genlab.urls import redact_url

_BLOCK = 1 << 20
_SOCKET_TIMEOUT_S = 60.0
SCHEMES = ("http", "https")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp:// too: a server must not lead a download off http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        if urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise DatasetError(
                f"{redact_url(req.full_url)} redirects to {redact_url(newurl)}: only http:// "
                f"and https:// are followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def file_name_from_url(url: str) -> str:
    """The last component of the URL's path (never its query or fragment), if it is safe.

    A ValueError (a config problem) when the path names no file.
    """
    name = PurePosixPath(urlsplit(url).path).name
    if not name or name in (".", "..") or name.startswith("."):
        raise ValueError(
            f"cannot name the download of {redact_url(url)}: its path has no file name; give "
            f"a URL whose path ends in the archive's name (.../images.zip)"
        )
    return name


def download(
    url: str,
    destination: Path,
    sha256: str,
    *,
    max_bytes: int,
    deadline_s: float,
    setting: str = "data.source",
    progress: str | None = None,
) -> None:
    """Fetch ``url`` into ``destination``, refusing more than ``max_bytes`` or ``deadline_s``
    seconds in all; the file appears only if its sha256 is ``sha256``."""
    from rich.progress import Progress

    shown = redact_url(url)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise DatasetError(
            f"{setting}.url={shown}: only http:// and https:// URLs are downloaded (for a "
            f"local file, set {setting}.path instead)"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    digest = hashlib.sha256()
    received = 0
    deadline = time.monotonic() + deadline_s
    try:
        timeout = min(_SOCKET_TIMEOUT_S, deadline_s)
        opener = urllib.request.build_opener(_HttpOnlyRedirects)
        with opener.open(url, timeout=timeout) as response:  # http(s) only, redirects too
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise DatasetError(
                    f"{shown} is {declared} bytes (Content-Length), more than "
                    f"{setting}.max_download_bytes={max_bytes}: raise it if the file is genuine"
                )
            with Progress(disable=not (progress and declared)) as bar:
                task = bar.add_task(progress or "", total=declared or None)
                with open(partial, "wb") as out:
                    # read1: returns what has arrived, so the deadline is checked between
                    # bytes however slowly they come (read(n) would wait for all n).
                    while block := response.read1(_BLOCK):
                        received += len(block)
                        if received > max_bytes:
                            raise DatasetError(
                                f"{shown} sent more than {setting}.max_download_bytes="
                                f"{max_bytes} bytes; stopped. Raise it if the file is genuine."
                            )
                        if time.monotonic() > deadline:
                            raise DatasetError(
                                f"{shown} took longer than {setting}.download_deadline_s="
                                f"{deadline_s:g} s ({received} bytes received); stopped. Raise "
                                f"it for a slow connection."
                            )
                        digest.update(block)
                        out.write(block)
                        bar.update(task, advance=len(block))
    except DatasetError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, ValueError) as error:  # URLError, timeouts, resets, bad URLs
        partial.unlink(missing_ok=True)
        reason = printable(str(error).replace(url, shown))
        raise DatasetError(
            f"could not download {shown}: {reason}. Check the URL and the connection, or "
            f"download the file yourself and set {setting}.path to it."
        ) from None
    except http.client.HTTPException as error:  # not an OSError: BadStatusLine, LineTooLong,
        # IncompleteRead (a broken chunked body), ... from a broken or hostile server
        partial.unlink(missing_ok=True)
        reason = printable(f"{type(error).__name__}: {error}".replace(url, shown))
        raise DatasetError(
            f"could not download {shown}: the server sent a malformed HTTP response "
            f"({reason}). Check the URL, or download the file yourself and set "
            f"{setting}.path to it."
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if got != sha256:
        partial.unlink(missing_ok=True)
        raise DatasetError(
            f"{shown} has sha256 {got}, expected {sha256} ({setting}.sha256): the file changed "
            f"upstream or the download was cut; nothing was kept"
        )
    os.replace(partial, destination)
