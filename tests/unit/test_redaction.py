"""redact_text finds every URL the plain scheme regex finds (without its quadratic time)."""

from __future__ import annotations

import random
import re

import pytest

from genlab.config.redaction import redact_text
from genlab.urls import redact_url

# The specification: the leftmost-longest matches of this regex, each passed to redact_url.
REFERENCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def reference(text: str) -> str:
    return REFERENCE.sub(lambda match: redact_url(match.group(0)), text)


@pytest.mark.parametrize(
    "text",
    [
        "data.url=https://user:token@example.org/x.zip",
        "x=1https://u:p@h",  # a scheme right after a digit, a dash or a dot
        "x=--https://u:p@h",
        "url: .https://u:p@h",
        "git+https://a:b@h/x?token=1 and 'ftp://c:d@e'",
        "a://b://c:d@e",
        "://u:p@h and 1://u:p@h",
    ],
)
def test_secrets_are_redacted_as_the_reference_regex_does(text):
    assert redact_text(text) == reference(text)


def test_random_text_is_redacted_as_the_reference_regex_does():
    rng = random.Random(0)
    alphabet = "ab1+.-:/ @?=&'\"<>x"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert redact_text(text) == reference(text), text


def test_a_long_word_is_scanned_once():
    # 100,000 scheme characters before "://": the reference regex is quadratic here.
    text = "a" * 100_000 + "://user:secret@host"
    assert "secret" not in redact_text(text)
