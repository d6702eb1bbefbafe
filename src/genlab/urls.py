"""URLs as they may be recorded: without credentials or query tokens.

A download URL can carry a secret (``https://user:pass@host/...``, a presigned
``?X-Amz-Signature=...``). Everything genlab writes down about a URL (meta.json, the model
card, W&B, Hydra's saved config, error messages) goes through :func:`redact_url` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """``url`` with any user info and every query / fragment value replaced by REDACTED.

    Query keys are kept (they say which kind of token was there); their values never are, since
    a presigned URL's signature, credential and security token all travel as query values.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}={REDACTED}" if "=" in pair else REDACTED
        for pair in parts.query.split("&")
        if pair
    )
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


WEB_SCHEMES = ("http", "https")


def web_link(url: object) -> str | None:
    """``url`` as a page a report may link to (a W&B run's page), or None: the one rule for
    what becomes an ``href``. Only http(s) with a host (never ``javascript:``, ``file:`` or
    ``data:``), one printable token, redacted like every URL genlab records."""
    if not isinstance(url, str) or not url.isprintable() or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not host:
        return None
    return redact_url(url)
