"""b64, canonical JSON and the wire check (PROTOCOL.md §1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbox.crypto import encoding
from postbox.crypto.encoding import b64d, b64e, cj, parse_canonical, parse_json, u32
from postbox.crypto.errors import EncodingError, NonCanonical


def test_cj_sorts_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16 and sorts before U+E000, unlike in code point order.
    value = {"b": 1, "a": 2, "\ue000": 3, "\U0001f600": 4, "aa": 5, "": 6}
    assert cj(value) == '{"":6,"a":2,"aa":5,"b":1,"\U0001f600":4,"\ue000":3}'.encode()


def test_cj_escapes_exactly_like_rfc8785() -> None:
    s = '"\\\b\t\n\f\r\x00\x01\x1f\x7f\u2028\u00e9/<>'
    assert cj(s) == b'"\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u0001\\u001f\x7f\xe2\x80\xa8\xc3\xa9/<>"'


def test_cj_integers() -> None:
    assert cj([0, -1, 2**53 - 1, -(2**53 - 1)]) == b"[0,-1,9007199254740991,-9007199254740991]"
    for bad in [2**53, -(2**53), 1.0, 0.5, float("nan"), float("inf")]:
        with pytest.raises(NonCanonical):
            cj(bad)


@pytest.mark.parametrize(
    "bad",
    ["\ud800", {"\udfff": 1}, {1: "x"}, b"bytes", {1, 2}, object()],
    ids=lambda v: "object()" if type(v) is object else repr(v),
)
def test_cj_rejects_what_it_cannot_hold(bad: Any) -> None:
    with pytest.raises(NonCanonical):
        cj(bad)


def test_cj_depth_limit() -> None:
    deep: Any = 1
    for _ in range(32):
        deep = [deep]
    cj(deep)
    with pytest.raises(NonCanonical):
        cj([deep])


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":1}',
        b'{"a":1.0}',
        b"[-0]",
        b" {}",
        b"{}\n",
        b'{"a":"\\ud800"}',
        b"[9007199254740992]",
        b"\xef\xbb\xbf{}",
        b"[NaN]",
        b"[1e2]",
        b'{"b":1,"a":2}',
        b'["\\u0041"]',
        b'["\\/"]',
        b'["\xff"]',
        b'["\xed\xa0\x80"]',  # a surrogate encoded in UTF-8
        b"[" * 100_000,
        b"",
        b"[1]x",
        b"[" + b"9" * 5000 + b"]",
    ],
    ids=lambda b: repr(b[:20]),
)
def test_parse_canonical_rejects(body: bytes) -> None:
    with pytest.raises(NonCanonical):
        parse_canonical(body)


def test_parse_json_is_strict_but_not_canonical() -> None:
    assert parse_json(b'{ "b": 1, "a": [true] }') == {"b": 1, "a": [True]}
    with pytest.raises(NonCanonical):
        parse_json(b'{"a":1,"a":2}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_cj_round_trips_and_is_canonical_on_the_wire(value: Any) -> None:
    body = cj(value)
    assert parse_canonical(body) == value
    assert json.loads(body) == value


@given(st.binary(max_size=100))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text
    assert b64d(text) == data
    assert b64d(text, len(data)) == data


@pytest.mark.parametrize("text", ["-_9", "-_8=", "a", "ab+c", "ab/c", "ab c", "AB==", "ä"])
def test_b64_is_strict(text: str) -> None:
    with pytest.raises(EncodingError):
        b64d(text)


def test_b64_fixed_lengths() -> None:
    assert b64d(b64e(bytes(16)), encoding.ID_BYTES) == bytes(16)
    with pytest.raises(EncodingError):
        b64d(b64e(bytes(15)), encoding.ID_BYTES)
    with pytest.raises(EncodingError):
        b64d(123)


def test_u32() -> None:
    assert u32(258) == b"\x00\x00\x01\x02"
    with pytest.raises(EncodingError):
        u32(2**32)
