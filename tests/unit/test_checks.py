"""The shared argument check and the shared file digest."""

from __future__ import annotations

import hashlib

import pytest

from genlab.checks import require_positive
from genlab.io import file_digest


def test_require_positive_accepts_positive_ints():
    require_positive(a=1, b=10**9)
    require_positive()


@pytest.mark.parametrize("value", [0, -1, 1.0, 2.5, True, False, None, "3"])
def test_require_positive_names_the_argument_and_value(value):
    with pytest.raises(ValueError) as info:
        require_positive(ok=3, base_channels=value)
    assert str(info.value) == f"base_channels must be a positive integer, got {value!r}"


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])  # empty, tiny, across a chunk boundary
def test_file_digest_matches_hashlib(tmp_path, algorithm, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_digest(path, algorithm) == hashlib.new(algorithm, data).hexdigest()
    assert file_digest(str(path)) == hashlib.sha256(data).hexdigest()
