"""Padmé padding (PROTOCOL.md §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbox.crypto.errors import BadPadding
from postbox.crypto.padding import MAX_CONTENT, pad, padded_length, padme, unpad


def test_padme_values() -> None:
    assert [padme(n) for n in [0, 1, 2, 3, 9, 100, 1000, 65536, 65537]] == [
        0, 1, 2, 3, 10, 104, 1024, 65536, 67584,
    ]  # fmt: skip
    assert padded_length(0) == 256
    assert padded_length(255) == 256
    assert padded_length(256) == 272


def test_padme_overhead_is_small_and_monotonic() -> None:
    prev = 0
    for n in range(1, 70_000):
        p = padme(n)
        assert n <= p <= n * 1.12 + 1
        assert p >= prev
        prev = p


@given(st.binary(max_size=3000))
def test_round_trip(data: bytes) -> None:
    padded = pad(data)
    assert len(padded) == padded_length(len(data))
    assert unpad(padded) == data


@pytest.mark.parametrize(
    "padded",
    [b"", bytes(256), b"abc" + bytes(253), b"abc\x80" + bytes(253), b"abc\x80" + bytes(251)],
)
def test_strict_unpad(padded: bytes) -> None:
    with pytest.raises(BadPadding):
        unpad(padded)


def test_limits() -> None:
    with pytest.raises(BadPadding):
        pad(b"x" * 10, limit=9)
    big = b"\x01" * (MAX_CONTENT + 1)
    with pytest.raises(BadPadding):
        pad(big)
