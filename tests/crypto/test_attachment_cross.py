"""Attachments across languages: Python encrypts → JavaScript decrypts, and the reverse."""

from __future__ import annotations

import random
from typing import Any

import pytest
from support.node import run_tool

from postbox.crypto.attachment import blob_hash, blob_length
from postbox.crypto.attachment_stream import decrypt_bytes, encrypt_bytes
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CryptoError

SIZES = [0, 1, 65_536, 200_000, (1 << 20) + 12_345]


def _file(length: int) -> bytes:
    data = bytearray(random.Random(length).randbytes(length))
    if length > 100:
        data[-40:] = bytes(40)  # trailing zeros: file data that looks like padding
    return bytes(data)


def test_python_encrypts_javascript_decrypts() -> None:
    blobs: list[dict[str, Any]] = []
    files = []
    for length in SIZES:
        data = _file(length)
        blob, key, digest = encrypt_bytes(data)
        files.append(data)
        blobs.append(
            {"key": b64e(key), "size": len(blob), "hash": b64e(digest), "blob": b64e(blob)}
        )
    # One tampered blob must be refused by JavaScript with the name Python gives it.
    bad = dict(blobs[3])
    raw = bytearray(b64d(bad["blob"]))
    raw[30_000] ^= 1
    bad["blob"] = b64e(bytes(raw))
    with pytest.raises(CryptoError) as info:
        decrypt_bytes(bytes(raw), b64d(bad["key"]), bad["size"], b64d(bad["hash"]))
    python_error = type(info.value).__name__
    results = run_tool("attachment_cross.mjs", "decrypt", payload={"blobs": [*blobs, bad]})
    for data, got in zip(files, results, strict=False):
        assert got["ok"], got
        assert b64d(got["plaintext"]) == data
        assert got["plain_size"] == len(data)
    assert (
        results[-1]
        == {"ok": False, "error": python_error}
        == {
            "ok": False,
            "error": "DecryptionFailed",
        }
    )


def test_javascript_encrypts_python_decrypts() -> None:
    files = [_file(length) for length in SIZES]
    results = run_tool(
        "attachment_cross.mjs", "encrypt", payload={"files": [b64e(f) for f in files]}
    )
    keys = set()
    for data, got in zip(files, results, strict=True):
        blob, key, digest = b64d(got["blob"]), b64d(got["key"], 32), b64d(got["hash"], 32)
        assert got["size"] == len(blob) == blob_length(len(data))
        assert got["plain_size"] == len(data)
        assert digest == blob_hash(blob)
        assert decrypt_bytes(blob, key, got["size"], digest) == data
        keys.add(key)
    assert len(keys) == len(files)  # a fresh key per blob
