"""web_link: the one rule for which recorded URL (a W&B run's page) a page may link to."""

from __future__ import annotations

import pytest

from genlab.urls import REDACTED, web_link


@pytest.mark.parametrize(
    "url",
    ["https://wandb.ai/me/genlab/runs/abc123", "http://localhost:8080/me/genlab/runs/abc123"],
)
def test_a_web_page_is_linked_as_it_is(url):
    assert web_link(url) == url


def test_credentials_and_tokens_in_a_link_are_redacted():
    link = web_link("https://user:secret@wandb.example/runs/x?token=abc#frag")
    assert link == f"https://{REDACTED}@wandb.example/runs/x?token={REDACTED}#{REDACTED}"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)//https://wandb.ai",
        "JAVASCRIPT://wandb.ai/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://wandb.ai/runs/x",
        "https://",  # no host
        "https:///runs/x",
        "//wandb.ai/runs/x",  # no scheme
        "wandb.ai/runs/x",
        "https://[::1/runs/x",  # does not parse
        "https://wandb.ai:port/runs/x",
        "https://wandb.ai/runs/x y",  # not one token
        "https://wandb.ai/runs/x\n<script>",
        "",
        None,
        ["https://wandb.ai"],
        42,
    ],
)
def test_anything_else_is_no_link(url):
    assert web_link(url) is None
