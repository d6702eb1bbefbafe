"""The homes of byte-reproducible outputs: the time an output claims (SOURCE_DATE_EPOCH, else
the run's own record) and torch files whose bytes do not depend on where they were written."""

from __future__ import annotations

import os

import pytest
import torch

from genlab.errors import ConfigError
from genlab.io import save_torch
from genlab.provenance import SOURCE_DATE_EPOCH, claimed_time


def test_source_date_epoch_wins_over_the_record(monkeypatch):
    monkeypatch.setenv(SOURCE_DATE_EPOCH, "1700000000")
    assert claimed_time("2020-01-01T00:00:00+00:00") == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize("value", ["soon", "1.5e9", "-1", "99999999999999999999"])
def test_a_malformed_source_date_epoch_is_one_line_naming_it(monkeypatch, value):
    monkeypatch.setenv(SOURCE_DATE_EPOCH, value)
    with pytest.raises(ConfigError) as caught:
        claimed_time("2020-01-01T00:00:00+00:00")
    message = str(caught.value)
    assert SOURCE_DATE_EPOCH in message and repr(value) in message and "\n" not in message


def test_without_it_the_record_then_the_run_file_give_the_time(monkeypatch, tmp_path):
    monkeypatch.delenv(SOURCE_DATE_EPOCH, raising=False)
    assert claimed_time("2020-01-01T00:00:00+00:00") == "2020-01-01T00:00:00+00:00"
    written = tmp_path / "generator.safetensors"
    written.write_bytes(b"x")
    os.utime(written, (86400, 86400))
    assert claimed_time(None, written=written) == "1970-01-02T00:00:00+00:00"
    with pytest.raises(ValueError):
        claimed_time(None)


@pytest.mark.parametrize(
    "recorded",
    ["yesterday", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],
)
def test_a_recorded_time_that_is_not_one_falls_back_to_the_run_file(
    monkeypatch, tmp_path, recorded
):
    """A hostile run record: a time that does not parse, or parses but has no UTC (before
    year 1, after year 9999), is not taken and does not crash the stage."""
    monkeypatch.delenv(SOURCE_DATE_EPOCH, raising=False)
    written = tmp_path / "generator.safetensors"
    written.write_bytes(b"x")
    os.utime(written, (86400, 86400))
    assert claimed_time(recorded, written=written) == "1970-01-02T00:00:00+00:00"


def test_save_torch_bytes_do_not_depend_on_the_file_name(tmp_path):
    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"k": 1}}
    save_torch(payload, tmp_path / "a.pt")
    save_torch(payload, tmp_path / "classifier.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "classifier.pt").read_bytes()
    loaded = torch.load(tmp_path / "classifier.pt", weights_only=True)
    assert torch.equal(loaded["state_dict"]["w"], payload["state_dict"]["w"])
