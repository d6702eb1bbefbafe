"""URL secrets kept out of every config genlab or Hydra writes down.

A download URL may carry a token (``https://user:pass@host/...``, a presigned
``?X-Amz-Signature=...``). The job needs it to download, but nothing recorded about the job may
hold it: the run record and W&B config go through :func:`redact_config`, and Hydra's own saved
config (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, a sweep's
``multirun.yaml``) is rewritten by :class:`RedactUrls`, a Hydra callback, as the job starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode

from genlab.urls import redact_url

# A URL with a scheme, up to whitespace, a quote or an angle bracket.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`genlab.urls.redact_url`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


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
    """Rewrite ``path`` (atomically) with its URLs redacted; True if anything changed."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    redacted = redact_text(text)
    if redacted == text:
        return False
    partial = path.with_name(path.name + ".redacting")
    partial.write_text(redacted, encoding="utf-8")
    os.replace(partial, path)
    return True


class RedactUrls(Callback):
    """Hydra callback (conf/hydra_run.yaml): Hydra saves the job's config, overrides and its
    own settings before the job starts; this rewrites them with URL secrets redacted."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / hydra.output_subdir
            for name in HYDRA_FILES:
                redact_file(saved / name)
        if hydra.mode == RunMode.MULTIRUN:
            redact_file(Path(hydra.sweep.dir) / "multirun.yaml")
