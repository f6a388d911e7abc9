"""What every signed v1 key object shares (PROTOCOL.md §2, §3): the members ``v``, ``sig`` and
``pk`` as shapes, the signed bytes ``label ‖ cj(body)``, and a certificate's public key.

The key objects themselves are :mod:`postbox.crypto.certs` (certificates, the org root),
:mod:`postbox.crypto.statements` (revocations, team wraps, memberships, server keys) and
:mod:`postbox.crypto.procedures`; ``certs`` re-exports the other two, so this module is the
one they all build on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postbox.crypto import shapes
from postbox.crypto.encoding import KEY_BYTES, SIGNATURE_BYTES, b64d, cj

if TYPE_CHECKING:  # only a type here: certs imports the modules that import this one
    from postbox.crypto.certs import Cert

V1 = shapes.const(1)
SIG = shapes.b64(SIGNATURE_BYTES)
PK = shapes.b64(KEY_BYTES)


def signed_bytes(label: bytes, obj: Any) -> bytes:
    """What a signature covers: the domain label (PROTOCOL.md §2), then ``cj(obj)``."""
    return label + cj(obj)


def cert_pk(cert: Cert) -> bytes:
    return b64d(cert["pk"], KEY_BYTES)
