"""tests/vectors/cj.json and padding.json in Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from postbox.crypto.encoding import b64d, cj, parse_canonical
from postbox.crypto.errors import CryptoError
from postbox.crypto.padding import pad, padded_length, unpad

HERE = Path(__file__).parents[1] / "vectors"
CJ = json.loads((HERE / "cj.json").read_text("utf-8"))
PADDING = json.loads((HERE / "padding.json").read_text("utf-8"))


@pytest.mark.parametrize("case", CJ["cases"], ids=lambda c: c["name"])
def test_cj_cases(case: dict[str, Any]) -> None:
    body = b64d(case["bytes"])
    assert cj(case["value"]) == body
    assert parse_canonical(body) == case["value"]


@pytest.mark.parametrize("case", CJ["reject"], ids=lambda c: c["name"])
def test_cj_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(CryptoError) as info:
        parse_canonical(b64d(case["bytes"]))
    assert type(info.value).__name__ == case["error"]


def test_padding_cases() -> None:
    for case in PADDING["cases"]:
        assert padded_length(case["length"]) == case["padded_length"], case["name"]
    for case in PADDING["cases"][:300]:  # the small ones, padded and unpadded for real
        data = b"\x01" * case["length"]
        padded = pad(data)
        assert len(padded) == case["padded_length"]
        assert unpad(padded) == data


@pytest.mark.parametrize("case", PADDING["reject"], ids=lambda c: c["name"])
def test_padding_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(CryptoError) as info:
        unpad(b64d(case["padded"]))
    assert type(info.value).__name__ == case["error"]
