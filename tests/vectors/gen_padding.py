"""padding.json: Padmé lengths and strict unpadding (PROTOCOL.md §5, §10).

Cases give ``length`` and ``padded_length`` = max(256, padme(length + 1)) for every length
0..5000 and around every power of two up to 2^24 (the content limit); reject cases give a
``padded`` buffer that unpadding must refuse with ``BadPadding``.
"""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import b64e
from postbox.crypto.padding import MAX_CONTENT, padded_length


def _lengths() -> list[int]:
    lengths = set(range(5001))
    for k in range(1, 25):
        for d in (-2, -1, 0, 1, 2):
            n = 2**k + d
            if 0 <= n <= MAX_CONTENT:
                lengths.add(n)
    lengths.update({65_279, 65_535, 65_536, 65_537, 1_000_000, MAX_CONTENT - 1, MAX_CONTENT})
    return sorted(lengths)


def build() -> dict[str, Any]:
    cases = [
        {"name": f"length {n}", "length": n, "padded_length": padded_length(n)} for n in _lengths()
    ]
    bad: list[tuple[str, bytes]] = [
        ("empty", b""),
        ("all zeros", bytes(256)),
        ("no marker", b"abc" + bytes(253)),
        ("wrong marker", b"abc\x81" + bytes(252)),
        ("trailing non-zero after the marker", b"abc\x80" + bytes(251) + b"\x01"),
        ("padded length one short", b"abc\x80" + bytes(251)),
        ("padded length one long", b"abc\x80" + bytes(253)),
        ("below the 256-byte floor", b"abc\x80"),
        ("padme length off by 16", b"x" * 300 + b"\x80" + bytes(padded_length(300) - 301 + 16)),
        ("marker at the very end but too long", b"x" * 256 + b"\x80"),
    ]
    reject = [{"name": n, "error": "BadPadding", "padded": b64e(p)} for n, p in bad]
    return {"cases": cases, "reject": reject}
