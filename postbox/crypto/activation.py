"""Activation codes (PROTOCOL.md §9): bind a citizen's first identity key to a paper code.

The inviting client (a caseworker's desk) makes a code of 20 random bytes, printed as 32
Crockford-base32 symbols in 8 groups of 4 (or put in a QR code), and registers only
``act_auth = H(key=code, "postbox/v1/act-auth")`` with the server. The activating client
proves possession by presenting ``act_auth`` (the server compares it with
:func:`check_act_auth`; it never sees the code), and sends::

    act_mac = H(key=H(key=code, "postbox/v1/act-mac"), cj(identity cert), 32)

over its new identity certificate body. The inviting side, which still holds the code,
verifies the MAC (:func:`verify_act_mac`) and marks that identity "verified by activation
code". The server cannot forge the MAC: it knows ``act_auth`` only, and the two keyed
hashes are independent.

The code has no checksum (PROTOCOL.md fixes 32 symbols); a mistyped code fails at the
server's ``act_auth`` comparison. Parsing forgives case, separators and full-width forms
like recovery keys do (:func:`postbox.crypto.recovery.clean_symbols`).
"""

from __future__ import annotations

from typing import Any, Final

from postbox.crypto import certs, crockford, domain
from postbox.crypto.encoding import CODE_BYTES, KEY_BYTES, cj
from postbox.crypto.errors import BadRecoveryKey, BadSignature, CertificateInvalid
from postbox.crypto.primitives import H, equal, random_bytes
from postbox.crypto.recovery import clean_symbols

CODE_SYMBOLS: Final = 32
GROUP: Final = 4
MAC_BYTES: Final = 32


def _check_code(code: object) -> bytes:
    if not isinstance(code, bytes) or len(code) != CODE_BYTES:
        raise BadRecoveryKey("an activation code is 20 bytes")
    return code


def generate_code(*, code: bytes | None = None) -> bytes:
    """20 fresh random bytes (or ``code``, checked, for vectors)."""
    return _check_code(code if code is not None else random_bytes(CODE_BYTES))


def format_code(code: bytes) -> str:
    """``XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`` (upper case, for printing)."""
    return crockford.group(crockford.encode(_check_code(code)), GROUP, "-")


def parse_code(text: str) -> bytes:
    """The 20-byte code from what the user typed; :class:`BadRecoveryKey` if malformed."""
    symbols = clean_symbols(text)
    if len(symbols) != CODE_SYMBOLS:
        raise BadRecoveryKey(f"an activation code has {CODE_SYMBOLS} characters")
    return crockford.decode(symbols)


def act_auth(code: bytes) -> bytes:
    """``H(key=code, "postbox/v1/act-auth")``: what the server stores and is shown."""
    return H(domain.ACT_AUTH, key=_check_code(code))


def check_act_auth(stored: bytes, presented: bytes) -> None:
    """Server side: constant-time comparison; :class:`BadSignature` when they differ."""
    if len(presented) != KEY_BYTES or not equal(stored, presented):
        raise BadSignature("activation code does not match")


def _identity_cert_bytes(identity_cert: Any) -> bytes:
    cert = certs.check_cert(identity_cert)
    if cert["use"] != "sign":
        raise CertificateInvalid("an activation MAC covers an identity (sign) certificate")
    return cj(cert)


def act_mac(code: bytes, identity_cert: Any) -> bytes:
    """``H(key=H(key=code, "postbox/v1/act-mac"), cj(identity cert), 32)``.

    ``identity_cert`` is the certificate body (``cert``, not the served wrapper); it is
    checked with ``certs.check_cert`` and must be ``use: "sign"``.
    """
    mac_key = H(domain.ACT_MAC, key=_check_code(code))
    return H(_identity_cert_bytes(identity_cert), MAC_BYTES, key=mac_key)


def verify_act_mac(code: bytes, identity_cert: Any, mac: bytes) -> None:
    """Raise :class:`BadSignature` unless ``mac`` is :func:`act_mac` (constant time)."""
    expected = act_mac(code, identity_cert)
    if not isinstance(mac, bytes) or len(mac) != MAC_BYTES or not equal(expected, mac):
        raise BadSignature("activation MAC does not match")
