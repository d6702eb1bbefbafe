"""The shared argument checks and the shared file digest."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import pytest

from genlab.checks import finite_number, require_positive
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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (3, 3.0),
        (-2.5, -2.5),
        (1e308, 1e308),
        (Fraction(1, 4), 0.25),
        (2**1000, 2.0**1000),
    ],
)
def test_finite_number_gives_a_usable_number_as_a_float(value, expected):
    number = finite_number(value)
    assert type(number) is float and number == expected


@pytest.mark.parametrize(
    "value",
    [
        10**400,  # a JSON file's 400-digit integer: float() and math.isfinite() raise on it
        -(10**400),
        Fraction(10**400, 3),
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        None,
        "1.5",
        [1.0],
        {"value": 1.0},
    ],
)
def test_finite_number_refuses_what_is_not_a_usable_number(value):
    assert finite_number(value) is None
