"""Derived key ids (PROTOCOL.md §3).

A kid is never chosen: it is ``b64(H("postbox/v1/kid" ‖ 0x00 ‖ use ‖ 0x00 ‖ pk, 16))`` and
every verifier recomputes it, so a certificate cannot claim another key's id.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from postbox.crypto import domain
from postbox.crypto.encoding import ID_BYTES, b64e
from postbox.crypto.primitives import H, equal

Use = Literal["sign", "encrypt"]
USES: Final = get_args(Use)


def derive_kid(use: Use, pk: bytes) -> str:
    if use not in USES:
        raise ValueError("use must be 'sign' or 'encrypt'")
    return b64e(H(domain.KID + b"\x00" + use.encode("ascii") + b"\x00" + pk, ID_BYTES))


def kid_matches(kid: str, use: Use, pk: bytes) -> bool:
    return equal(kid.encode("ascii", "replace"), derive_kid(use, pk).encode("ascii"))
