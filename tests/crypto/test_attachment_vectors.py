"""tests/vectors/attachment.json in Python: rebuild, open, reject (PROTOCOL.md §6, §10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gen_attachment
import nacl.bindings as sodium
import pytest

from postbox.crypto import domain
from postbox.crypto.attachment import blob_length, check_file_name
from postbox.crypto.attachment_stream import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_bytes,
)
from postbox.crypto.encoding import b64d
from postbox.crypto.errors import CryptoError, InvalidKey
from postbox.crypto.padding import MAX_FILE, pad
from postbox.crypto.primitives import H

PATH = Path(gen_attachment.__file__).with_name("attachment.json")
VECTORS: dict[str, Any] = json.loads(PATH.read_text("utf-8"))
BLOBS = VECTORS["cases"]
NAMES = VECTORS["file_name_cases"]
BLOB_REJECTS = VECTORS["reject"]
NAME_REJECTS = VECTORS["file_name_reject"]
SPLITS = [[10**9], [1], [24, 65_553], [997], [65_552, 3]]


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def _pieces(blob: bytes, split: list[int]) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        for step in split:
            out.append(blob[pos : pos + step])
            pos += step
    return out


def _splits(blob: bytes) -> list[list[int]]:
    """Ways to deliver a blob: whole, by single bytes (small ones), across chunk borders."""
    return [split for split in SPLITS if split != [1] or len(blob) < 5000]


def test_the_file_has_the_cases_protocol_md_asks_for() -> None:
    assert sorted(len(b64d(c["plaintext"])) for c in BLOBS) == [0, 1, 255, 65_279, 65_536, 200_000]
    assert {r["error"] for r in BLOB_REJECTS} == {
        "DecryptionFailed",
        "TruncatedStream",
        "StreamFramingError",
        "BlobHashMismatch",
        "BlobLengthMismatch",
        "BadPadding",
    }


@pytest.mark.parametrize("case", BLOBS, ids=_ids(BLOBS))
def test_deterministic_parts_rebuild(case: dict[str, Any]) -> None:
    data = b64d(case["plaintext"])
    blob = b64d(case["blob"])
    assert data == gen_attachment.plaintext(case["name"], len(data))
    assert b64d(case["key"], 32) == gen_attachment.file_key(case["name"])
    assert case["size"] == len(blob) == blob_length(len(data))
    assert b64d(case["hash"], 32) == H(blob, key=domain.BLOB)


@pytest.mark.parametrize("case", BLOBS, ids=_ids(BLOBS))
def test_blob_opens(case: dict[str, Any]) -> None:
    key, blob, digest = b64d(case["key"]), b64d(case["blob"]), b64d(case["hash"])
    data = b64d(case["plaintext"])
    assert decrypt_bytes(blob, key, case["size"], digest) == data
    for split in _splits(blob):
        decryptor = AttachmentDecryptor(key, case["size"], digest)
        out = []
        for piece in _pieces(blob, split):
            out += decryptor.update_pieces(piece)
        decryptor.finish()
        assert b"".join(out) == data
    # And bare libsodium agrees on the layout: MESSAGE chunks of 65,536, then FINAL.
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, blob[:24], key)
    plain, tags = b"", []
    for i in range(24, len(blob), 65_553):
        chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
            state, blob[i : i + 65_553], None
        )
        plain += chunk
        tags.append(tag)
    assert plain == pad(data, MAX_FILE)
    assert tags == [0] * (len(tags) - 1) + [3]


@pytest.mark.parametrize("reject", BLOB_REJECTS, ids=_ids(BLOB_REJECTS))
def test_reject(reject: dict[str, Any]) -> None:
    key, blob, digest = b64d(reject["key"]), b64d(reject["blob"]), b64d(reject["hash"])
    with pytest.raises(CryptoError) as info:
        decrypt_bytes(blob, key, reject["size"], digest)
    assert type(info.value).__name__ == reject["error"]
    # The same error however the blob arrives (stream order decides, not the split).
    for split in _splits(blob):
        with pytest.raises(CryptoError) as info:  # noqa: PT012 - the error may come anywhere
            decryptor = AttachmentDecryptor(key, reject["size"], digest)
            for piece in _pieces(blob, split):
                decryptor.update_pieces(piece)
            decryptor.finish()
        assert type(info.value).__name__ == reject["error"]


@pytest.mark.parametrize("case", NAMES, ids=_ids(NAMES))
def test_good_file_name(case: dict[str, Any]) -> None:
    check_file_name(case["file_name"])


@pytest.mark.parametrize("reject", NAME_REJECTS, ids=_ids(NAME_REJECTS))
def test_bad_file_name(reject: dict[str, Any]) -> None:
    with pytest.raises(CryptoError) as info:
        check_file_name(reject["file_name"])
    assert type(info.value).__name__ == reject["error"]


@pytest.mark.parametrize("case", BLOBS, ids=_ids(BLOBS))
def test_a_recorded_header_replays_the_blob_byte_for_byte(case: dict[str, Any]) -> None:
    """What resuming an upload relies on: key + header + file give the vector's blob."""
    blob = b64d(case["blob"])
    plaintext = b64d(case["plaintext"])
    for step in (1_000_000, 65_536, 4_097):
        encryptor = AttachmentEncryptor(b64d(case["key"]), header=blob[:24], offload_hash=False)
        out = [
            p
            for i in range(0, len(plaintext), step)
            for p in encryptor.update_pieces(memoryview(plaintext)[i : i + step])
        ]
        if not plaintext:
            out += encryptor.update_pieces(b"")
        out += list(encryptor.finish_pieces())
        assert b"".join(out) == blob
        assert encryptor.hash == b64d(case["hash"]) and encryptor.size == len(blob)


def test_a_header_needs_its_key_and_24_bytes() -> None:
    with pytest.raises(InvalidKey):
        AttachmentEncryptor(header=bytes(24))
    with pytest.raises(InvalidKey):
        AttachmentEncryptor(bytes(32), header=bytes(23))
