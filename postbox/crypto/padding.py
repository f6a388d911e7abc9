"""Padmé padding (PROTOCOL.md §5, §6).

Padmé leaks at most O(log log L) bits of a length while costing at most about 12 %
(and for small messages the 256-byte floor hides the length entirely). The marker byte
0x80 followed by zeros makes unpadding unambiguous; ``unpad`` is strict so that the same
plaintext has exactly one padded form.
"""

from __future__ import annotations

from typing import Final

from postbox.crypto.errors import BadPadding

MIN_PADDED: Final = 256
MAX_CONTENT: Final = 2**24  # message content
MAX_FILE: Final = 2**31  # attachments: 2 GiB
MARKER: Final = 0x80


def padme(length: int) -> int:
    """The Padmé length for ``length`` (integers only)."""
    if length < 0:
        raise ValueError("negative length")
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    z = e - s
    return -(-length // (1 << z)) << z


def padded_length(length: int) -> int:
    """Length of a ``length``-byte plaintext once padded: ``max(256, padme(length + 1))``."""
    return max(MIN_PADDED, padme(length + 1))


def pad(data: bytes, limit: int = MAX_CONTENT) -> bytes:
    """``data ‖ 0x80 ‖ 0x00…`` up to :func:`padded_length`."""
    if len(data) > limit:
        raise BadPadding("content too large")
    total = padded_length(len(data))
    return data + b"\x80" + bytes(total - len(data) - 1)


def unpad(padded: bytes, limit: int = MAX_CONTENT) -> bytes:
    """Strip the padding; raise :class:`BadPadding` unless it is exactly the padded form."""
    end = len(padded.rstrip(b"\x00")) - 1
    if end < 0 or padded[end] != MARKER:
        raise BadPadding("padding marker missing")
    if end > limit or padded_length(end) != len(padded):
        raise BadPadding("padded length does not match the length rule")
    return padded[:end]
