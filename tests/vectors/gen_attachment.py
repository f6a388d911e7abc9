"""attachment.json: attachment blobs and file names (PROTOCOL.md §6, §10).

Cases of kind ``blob`` name the file key, the file (``plaintext``), the ``blob``, its
``hash`` and its length ``size``. Keys and files come from fixed seeds; the secretstream
header is random (libsodium cannot be seeded), so the blob is a randomized output that
implementations *open* and check, while ``size`` and ``hash`` are deterministic functions
of the blob. The generator keeps each committed blob as long as it still opens to the
same file under the same key, so regenerating is byte-stable.

Reject cases of kind ``blob`` give ``key``, ``size`` and ``hash`` as a message header would
state them and the ``blob`` as a server would deliver it; ``error`` is the error of a
reader that checks the stated size first and then processes the blob in stream order,
reporting the first failure (so a duplicated chunk fails as a chunk that does not
authenticate, not as excess length). Some are made by tampering with a case's blob, the
others by a misbehaving key holder writing raw secretstream chunks.

Kind ``file_name``: names every client must accept (cases) or refuse with
``MalformedObject`` (rejects).

Run ``python tests/vectors/gen_attachment.py`` to rewrite attachment.json (the lead's
``generate.py`` does the same through :func:`build`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from postbox.crypto.attachment import (
    ABYTES,
    CHUNK_BYTES,
    CHUNK_CIPHER_BYTES,
    HEADER_BYTES,
    blob_hash,
    blob_length,
)
from postbox.crypto.attachment_stream import decrypt_bytes, encrypt_bytes
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.padding import pad

HERE = Path(__file__).parent
SEED = "vector-seed/attachment/"

MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
PUSH = sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH
FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

# (case name, file length): the lengths PROTOCOL.md §10 asks for.
FILES: list[tuple[str, int]] = [
    ("empty file", 0),
    ("one byte, 0x80", 1),
    ("255 bytes ending like padding", 255),
    ("65279 bytes: one full chunk, zeros into the marker window", 65_279),
    ("65536 bytes: two chunks", 65_536),
    ("200000 bytes: four chunks, zero runs", 200_000),
]

GOOD_NAMES = [
    "Antrag.pdf",
    "Bescheid 2026 – Müller, Ünal & Söhne.pdf",
    "ملف الطلب.pdf",
    "Заява (копія).docx",
    "..hidden",
    ".profile",
    "a" * 255,
    "ü" * 127,
    "\U0001f600" * 63,
    "invoice\u202egnp.exe",  # bidi controls are allowed; clients show them visibly
    " leading and trailing spaces ",
]

BAD_NAMES = [
    ("empty", ""),
    ("dot", "."),
    ("dot dot", ".."),
    ("slash", "a/b.pdf"),
    ("backslash", "a\\b.pdf"),
    ("NUL", "a\x00b.pdf"),
    ("newline", "a\nb.pdf"),
    ("tab", "a\tb.pdf"),
    ("DEL", "a\x7fb.pdf"),
    ("C1 control NEL", "a\x85b.pdf"),
    ("256 bytes", "a" * 256),
    ("256 bytes of UTF-8", "ü" * 128),
    ("not NFC", "Mu\u0308ller.pdf"),
]


def _seed(label: str) -> bytes:
    return hashlib.blake2b((SEED + label).encode("utf-8"), digest_size=32).digest()


def _stream(label: str, n: int) -> bytes:
    return bytes(sodium.randombytes_buf_deterministic(n, _seed(label)))


def file_key(name: str) -> bytes:
    return _seed(name + "/key")


def plaintext(name: str, length: int) -> bytes:
    """The file of a case: seeded random bytes shaped to reach the reader's edge cases."""
    data = bytearray(_stream(name + "/plaintext", length))
    if length == 1:
        data[0] = 0x80  # a file that is a lone marker byte
    elif length == 255:
        data[-3:] = b"\x80\x00\x00"  # ends exactly like padding does
    elif length == 65_279:
        data[-4000:] = bytes(4000)  # zeros that run into the marker window (from 63,488)
    elif length == 65_536:
        data[-1] = 0x80
    elif length == 200_000:
        data[100_000:170_000] = bytes(70_000)  # crosses the boundary of chunks 2 and 3
        data[-100:] = bytes(100)  # inside the marker window (from 196,608)
    return bytes(data)


# --- randomized outputs kept from the committed file -----------------------------------------
def _load() -> dict[str, Any]:
    path = HERE / "attachment.json"
    if not path.exists():
        return {"cases": [], "reject": []}
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    # file-name cases live in lists of their own (see build())
    data["cases"] = data["cases"] + data.get("file_name_cases", [])
    data["reject"] = data["reject"] + data.get("file_name_reject", [])
    return data


def _previous_blob(entries: list[dict[str, Any]], name: str) -> bytes | None:
    for entry in entries:
        if entry.get("name") == name and "blob" in entry:
            return b64d(entry["blob"])
    return None


def _case_blob(previous: bytes | None, key: bytes, data: bytes) -> bytes:
    if previous is not None:
        try:
            if decrypt_bytes(previous, key, len(previous), blob_hash(previous)) == data:
                return previous
        except CryptoError:
            pass
    return encrypt_bytes(data, key).blob


Chunk = tuple[bytes, int, bytes | None]  # (plaintext, tag, additional data)


def _raw_chunks(blob: bytes, key: bytes, chunks: list[Chunk]) -> bool:
    """Whether ``blob`` is exactly the raw secretstream of ``chunks`` under ``key``."""
    if len(blob) != HEADER_BYTES + sum(len(p) + ABYTES for p, _, _ in chunks):
        return False
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, blob[:HEADER_BYTES], key)
    pos = HEADER_BYTES
    for plain, tag, ad in chunks:
        sealed = blob[pos : pos + len(plain) + ABYTES]
        pos += len(sealed)
        try:
            got, got_tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, ad)
        except CryptoError:
            return False
        if got != plain or got_tag != tag:
            return False
    return True


def _crafted_blob(previous: bytes | None, key: bytes, chunks: list[Chunk]) -> bytes:
    if previous is not None and _raw_chunks(previous, key, chunks):
        return previous
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    parts = [bytes(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key))]
    for plain, tag, ad in chunks:
        parts.append(sodium.crypto_secretstream_xchacha20poly1305_push(state, plain, ad, tag))
    return b"".join(parts)


# --- cases ---------------------------------------------------------------------------------
def _cases(previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cases = []
    for name, length in FILES:
        key = file_key(name)
        data = plaintext(name, length)
        blob = _case_blob(_previous_blob(previous, name), key, data)
        cases.append(
            {
                "name": name,
                "kind": "blob",
                "key": b64e(key),
                "plaintext": b64e(data),
                "blob": b64e(blob),
                "hash": b64e(blob_hash(blob)),
                "size": len(blob),
            }
        )
    for text in GOOD_NAMES:
        cases.append({"name": f"file name {text!a}", "kind": "file_name", "file_name": text})
    return cases


def _split(blob: bytes) -> tuple[bytes, list[bytes]]:
    """(header, chunks) of a valid blob."""
    body = blob[HEADER_BYTES:]
    return blob[:HEADER_BYTES], [
        body[i : i + CHUNK_CIPHER_BYTES] for i in range(0, len(body), CHUNK_CIPHER_BYTES)
    ]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _reject(
    name: str, error: str, *, key: bytes, size: int, hash_: bytes, blob: bytes
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "blob",
        "error": error,
        "key": b64e(key),
        "size": size,
        "hash": b64e(hash_),
        "blob": b64e(blob),
    }


def _rejects(cases: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {c["name"]: c for c in cases}
    out: list[dict[str, Any]] = []

    # Tampering with the one-chunk blob of the empty file (297 bytes).
    small = by_name["empty file"]
    key, blob, digest = b64d(small["key"]), b64d(small["blob"]), b64d(small["hash"])
    size = len(blob)

    def tampered(name: str, error: str, bad: bytes, **stated: Any) -> None:
        out.append(
            _reject(
                name,
                error,
                key=stated.get("key", key),
                size=stated.get("size", size),
                hash_=stated.get("hash_", digest),
                blob=bad,
            )
        )

    tampered("empty file: header byte flipped", "DecryptionFailed", _flip(blob, 3))
    tampered("empty file: encrypted tag byte flipped", "DecryptionFailed", _flip(blob, 24))
    tampered("empty file: ciphertext byte flipped", "DecryptionFailed", _flip(blob, 100))
    tampered("empty file: MAC byte flipped", "DecryptionFailed", _flip(blob, size - 1))
    tampered("empty file: wrong key", "DecryptionFailed", blob, key=_seed("wrong key"))
    tampered("empty file: last byte cut", "TruncatedStream", blob[:-1])
    tampered("empty file: header only", "TruncatedStream", blob[:HEADER_BYTES])
    tampered("empty file: nothing delivered", "TruncatedStream", b"")
    tampered("empty file: a byte after the final chunk", "StreamFramingError", blob + b"\x00")
    tampered("empty file: wrong hash", "BlobHashMismatch", blob, hash_=_flip(digest, 31))
    tampered("empty file: size + 1 (no valid blob)", "BlobLengthMismatch", blob, size=size + 1)
    tampered("empty file: size - 17 (no valid blob)", "BlobLengthMismatch", blob, size=size - 17)
    tampered(
        "empty file: size of the next longer valid blob",
        "TruncatedStream",
        blob,
        size=HEADER_BYTES + 272 + ABYTES,
    )

    # Chunk-level attacks on the two-chunk blob of the 65,536-byte file.
    two = by_name["65536 bytes: two chunks"]
    key, blob, digest = b64d(two["key"]), b64d(two["blob"]), b64d(two["hash"])
    size = len(blob)
    header, (first, last) = _split(blob)
    tampered("two chunks: swapped", "DecryptionFailed", header + last + first)
    tampered("two chunks: first dropped", "TruncatedStream", header + last)
    tampered("two chunks: final dropped", "TruncatedStream", header + first)
    tampered("two chunks: first duplicated", "DecryptionFailed", header + first + first + last)
    tampered(
        "two chunks: size of the one-chunk blob (first chunk would be final)",
        "StreamFramingError",
        blob,
        size=HEADER_BYTES + CHUNK_CIPHER_BYTES,
    )

    # A misbehaving key holder: raw secretstream chunks that break the framing rules.
    def crafted(name: str, error: str, chunks: list[Chunk]) -> None:
        key = file_key(name)
        made = _crafted_blob(_previous_blob(previous, name), key, chunks)
        out.append(_reject(name, error, key=key, size=len(made), hash_=blob_hash(made), blob=made))

    full = _stream("crafted/full", CHUNK_BYTES)
    tail = pad(full + b"tail", 1 << 31)[CHUNK_BYTES:]  # a valid final chunk after `full`
    small_padded = pad(b"hello", 1 << 31)
    crafted("crafted: final tag on the first of two chunks", "StreamFramingError",
            [(full, FINAL, None), (tail, FINAL, None)])  # fmt: skip
    crafted("crafted: message tag on the last chunk", "StreamFramingError",
            [(small_padded, MESSAGE, None)])  # fmt: skip
    crafted("crafted: push tag on the last chunk", "StreamFramingError",
            [(small_padded, PUSH, None)])  # fmt: skip
    crafted("crafted: additional data on a chunk", "DecryptionFailed",
            [(small_padded, FINAL, b"ad")])  # fmt: skip
    crafted("crafted: no padding marker", "BadPadding", [(bytes(256), FINAL, None)])
    crafted("crafted: non-zero byte after the marker", "BadPadding",
            [(b"hello\x80\x01" + bytes(249), FINAL, None)])  # fmt: skip
    crafted("crafted: padded longer than the length rule", "BadPadding",
            [(b"hello\x80" + bytes(512 - 6), FINAL, None)])  # fmt: skip

    for name, text in BAD_NAMES:
        out.append(
            {
                "name": f"file name: {name}",
                "kind": "file_name",
                "error": "MalformedObject",
                "file_name": text,
            }
        )
    return out


def build() -> dict[str, Any]:
    previous = _load()
    cases = _cases(previous["cases"])
    for case in cases:
        if case["kind"] == "blob":
            assert case["size"] == blob_length(len(b64d(case["plaintext"])))
    rejects = _rejects(cases, previous["reject"])
    # PROTOCOL.md §10 fixes the fields of "cases" for this file (key, plaintext, blob, hash);
    # file names go in lists of their own so that every case and reject is a blob.
    return {
        "cases": [c for c in cases if c["kind"] == "blob"],
        "reject": [r for r in rejects if r["kind"] == "blob"],
        "file_name_cases": [c for c in cases if c["kind"] == "file_name"],
        "file_name_reject": [r for r in rejects if r["kind"] == "file_name"],
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    (HERE / "attachment.json").write_text(dumps(build()), encoding="utf-8")
