"""Crockford base32: the human-facing form of fingerprints, recovery keys and codes.

The alphabet leaves out I, L, O and U so that what is read aloud or typed from paper is
unambiguous; decoding is case-insensitive, reads I and L as 1 and O as 0, and ignores
spaces and hyphens between groups.
"""

from __future__ import annotations

from typing import Final

from postbox.crypto.errors import EncodingError

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES: Final = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}


def encode(data: bytes) -> str:
    """Big-endian bit stream in 5-bit symbols; the input length must be a multiple of 5."""
    if len(data) % 5:
        raise EncodingError("crockford input must be a multiple of 5 bytes")
    n = int.from_bytes(data, "big")
    count = len(data) * 8 // 5
    return "".join(ALPHABET[(n >> (5 * (count - 1 - i))) & 31] for i in range(count))


def normalize(text: str) -> str:
    """Upper-case, drop separators, map I/L→1 and O→0; reject anything else."""
    out = []
    for ch in text.upper():
        if ch in " -\t":
            continue
        if ch not in _VALUES:
            raise EncodingError("not a Crockford base32 character")
        out.append(ALPHABET[_VALUES[ch]])
    return "".join(out)


def decode(text: str) -> bytes:
    """Inverse of :func:`encode` after :func:`normalize`."""
    symbols = normalize(text)
    if len(symbols) % 8:
        raise EncodingError("crockford text must be a multiple of 8 symbols")
    n = 0
    for ch in symbols:
        n = (n << 5) | _VALUES[ch]
    return n.to_bytes(len(symbols) * 5 // 8, "big")


def group(symbols: str, size: int = 4, sep: str = "-") -> str:
    """``ABCDEFGH`` → ``ABCD-EFGH``."""
    return sep.join(symbols[i : i + size] for i in range(0, len(symbols), size))
