"""Login signatures (PROTOCOL.md §2, §4): the client proves it holds the auth key.

The server answers ``POST /api/v1/auth/challenge {"login"}`` with salt, parameters and a
32-byte challenge; the client derives the auth key (passphrase or recovery key) and signs::

    label ‖ challenge (32 raw bytes) ‖ u32(len(origin)) ‖ origin (ASCII) ‖ login (UTF-8)

with ``label`` = ``postbox/v1/login`` (method ``pass``) or ``postbox/v1/recovery-login``
(method ``recovery``). ``origin`` is the RFC 6454 ASCII serialization of the origin the
client believes it talks to (``https://host[:port]``, no trailing slash): a phishing site
on another origin cannot replay the signature to the real server, which accepts only its
configured public origin.

Login names are normalised by :func:`normalize_login` on both sides and the signed bytes
always use the normalised form, so that client and server cannot disagree.

Unknown names get a salt ``H(key=K_fake, login, 16)`` (:func:`fake_salt`) and the
default parameters, so that the challenge does not reveal whether an account exists.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Literal, get_args

from postbox.crypto import domain
from postbox.crypto.encoding import CHALLENGE_BYTES, KEY_BYTES, SALT_BYTES, u32
from postbox.crypto.errors import EncodingError, InvalidKey, MalformedObject
from postbox.crypto.primitives import H, sign, verify

Method = Literal["pass", "recovery"]
METHODS: Final = get_args(Method)
LABELS: Final = {"pass": domain.LOGIN, "recovery": domain.RECOVERY_LOGIN}
MAX_LOGIN_BYTES: Final = 254  # the longest e-mail address SMTP allows
MAX_HOST_CHARS: Final = 253
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: stripped from both ends of a login name (what mobile keyboards and copy-paste add)
LOGIN_TRIM: Final = " \t\r\n"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(https?)://({_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])(?::([1-9][0-9]{{0,4}}))?",
    re.ASCII,
)


def normalize_login(login: str) -> str:
    """The canonical login name: what is signed, stored and used for the fake salt.

    Rules (identical in login.js): trim ``LOGIN_TRIM`` at both ends; NFC; if it contains
    ``@``, lower-case (Unicode default case mapping, locale-independent) everything after
    the last ``@`` and apply NFC again. The local part keeps its case. Refused with
    :class:`MalformedObject`: empty, more than 254 UTF-8 bytes, control characters
    (Cc), lone surrogates.
    """
    if not isinstance(login, str):
        raise MalformedObject("login: expected a string")
    name = unicodedata.normalize("NFC", login.strip(LOGIN_TRIM))
    at = name.rfind("@")
    if at >= 0:
        name = unicodedata.normalize("NFC", name[: at + 1] + name[at + 1 :].lower())
    if not name:
        raise MalformedObject("login: empty")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise MalformedObject("login: control character or lone surrogate")
    if len(name.encode("utf-8")) > MAX_LOGIN_BYTES:
        raise MalformedObject(f"login: longer than {MAX_LOGIN_BYTES} bytes")
    return name


def check_origin(origin: str) -> str:
    """Accept only an RFC 6454 ASCII serialization of an http(s) origin.

    ``scheme://host[:port]``: scheme ``http`` or ``https``; host lower-case (DNS labels in
    LDH form, IDNs as ``xn--`` A-labels, IPv4, or a bracketed lower-case IPv6 literal);
    port without leading zeros, at most 65535, and absent when it is the scheme's default;
    no path, no trailing slash, no user info. That is what ``window.location.origin``
    gives. :class:`MalformedObject` otherwise.
    """
    if not isinstance(origin, str):
        raise MalformedObject("origin: expected a string")
    m = _ORIGIN.fullmatch(origin)
    if m is None:
        raise MalformedObject("origin: not an ASCII origin serialization")
    scheme, host, port = m.group(1), m.group(2), m.group(3)
    if len(host) > MAX_HOST_CHARS:
        raise MalformedObject("origin: host too long")
    if port is not None and (int(port) > 65535 or int(port) == DEFAULT_PORTS[scheme]):
        raise MalformedObject("origin: port out of range or the scheme's default")
    return origin


def login_message(challenge: bytes, origin: str, login: str, method: Method) -> bytes:
    """The signed bytes of §2 (login normalised; origin checked; challenge 32 bytes)."""
    if method not in METHODS:
        raise MalformedObject("method: expected pass or recovery")
    if not isinstance(challenge, bytes) or len(challenge) != CHALLENGE_BYTES:
        raise EncodingError("challenge must be 32 bytes")
    origin_bytes = check_origin(origin).encode("ascii")
    return (
        LABELS[method]
        + challenge
        + u32(len(origin_bytes))
        + origin_bytes
        + normalize_login(login).encode("utf-8")
    )


def sign_login(
    auth_seed: bytes, challenge: bytes, origin: str, login: str, method: Method
) -> bytes:
    """Ed25519 signature by the auth key (``pass``) or recovery auth key (``recovery``)."""
    return sign(auth_seed, login_message(challenge, origin, login, method))


def verify_login(
    auth_pk: bytes,
    signature: bytes,
    challenge: bytes,
    origin: str,
    login: str,
    method: Method,
) -> None:
    """Raise :class:`BadSignature` unless ``signature`` is the login signature of §2.

    The server passes its own configured origin, never one taken from the request.
    """
    verify(auth_pk, login_message(challenge, origin, login, method), signature)


def fake_salt(k_fake: bytes, login: str) -> bytes:
    """``H(key=K_fake, normalize_login(login), 16)``: the salt served for unknown names.

    Pure: the same name always gets the same salt, so repeated probes look like a real
    account. ``K_fake`` is a 32-byte server secret that never changes.
    """
    if not isinstance(k_fake, bytes) or len(k_fake) != KEY_BYTES:
        raise InvalidKey("K_fake must be 32 bytes")
    return H(normalize_login(login).encode("utf-8"), SALT_BYTES, key=k_fake)
