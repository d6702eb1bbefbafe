"""URL secrets kept out of every config genlab or Hydra writes down.

A download URL may carry a token (``https://user:pass@host/...``, a presigned
``?X-Amz-Signature=...``). The job needs it to download, but nothing recorded about the job may
hold it: the run record and W&B config go through :func:`redact_config`, and Hydra's own saved
config (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, a sweep's
``multirun.yaml``) is rewritten by :class:`RedactUrls`, a Hydra callback, as the job starts.
The same callback redacts the lines in which Hydra's launchers echo each sweep job's overrides.
"""

from __future__ import annotations

import logging
import re
import string
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode

from genlab.io import atomic_path
from genlab.layout import (
    HYDRA_CONFIG_FILE,
    HYDRA_OVERRIDES_FILE,
    HYDRA_SETTINGS_FILE,
    MULTIRUN_YAML,
)
from genlab.urls import redact_url

# A URL: a scheme ([A-Za-z][A-Za-z0-9+.-]*), "://", then up to whitespace, a quote or an angle
# bracket. Found from each "://" backwards (see redact_text), not with one regex: a regex tries
# every letter of a long word as a scheme's start (100,000 characters took 16 s).
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")
_URL_BODY = re.compile(r"[^\s'\"<>]+")
HYDRA_FILES = (HYDRA_CONFIG_FILE, HYDRA_SETTINGS_FILE, HYDRA_OVERRIDES_FILE)
# The loggers with which Hydra's launchers print every job's overrides as a sweep starts.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`genlab.urls.redact_url`.

    Each URL is the longest one a scheme regex would find leftmost: from a "://", back over the
    scheme characters before it (not past the previous URL) to the first letter among them,
    and forward over the body. Linear in the text's length."""
    parts: list[str] = []
    done = 0  # text[:done] is in parts
    for separator in re.finditer("://", text):
        start = separator.start()
        if start < done:
            continue  # inside the previous URL's body
        scheme = start
        while scheme > done and text[scheme - 1] in _SCHEME_CHARS:
            scheme -= 1
        while scheme < start and text[scheme] not in string.ascii_letters:
            scheme += 1
        body = _URL_BODY.match(text, separator.end())
        if scheme == start or body is None:
            continue  # no scheme before it, or nothing after it: not a URL
        parts += [text[done:scheme], redact_url(text[scheme : body.end()])]
        done = body.end()
    parts.append(text[done:])
    return "".join(parts)


def redact_config(value: Any) -> Any:
    """A copy of a plain (JSON-like) config with the URLs in its strings redacted."""
    if isinstance(value, dict):
        return {key: redact_config(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_config(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_file(path: Path) -> bool:
    """Rewrite ``path`` (atomically) with its URLs redacted; True if this call changed it.

    Safe to run at once from several processes on one file (parallel sweep jobs all redact the
    shared ``multirun.yaml``): each writes its own temporary file and renames it over ``path``,
    so a reader sees the old or the new whole file, and redaction gives the same text whether
    it starts from the original or an already redacted copy.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False  # nothing saved there (output_subdir off, or no such config)
    redacted = redact_text(text)
    if redacted == text:
        return False
    with atomic_path(path) as partial:
        partial.write_text(redacted, encoding="utf-8")
    return True


class _RedactRecord(logging.Filter):
    """Redacts the URLs in a log record's message (the record is changed in place)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACT_RECORD = _RedactRecord()


class RedactUrls(Callback):
    """Hydra callback (conf/hydra_run.yaml): Hydra saves the job's config, overrides and its
    own settings before the job starts; this rewrites them with URL secrets redacted. A sweep's
    launcher prints each job's overrides; those lines are redacted too."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        for name in LAUNCHER_LOGGERS:
            logger = logging.getLogger(name)
            if _REDACT_RECORD not in logger.filters:
                logger.addFilter(_REDACT_RECORD)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / hydra.output_subdir
            for name in HYDRA_FILES:
                redact_file(saved / name)
        if hydra.mode == RunMode.MULTIRUN:
            redact_file(Path(hydra.sweep.dir) / MULTIRUN_YAML)
