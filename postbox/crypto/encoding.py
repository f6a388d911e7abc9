"""Strict encodings of PROTOCOL.md §1: b64url, canonical JSON (cj) and the wire check.

``cj`` is the only JSON that is ever signed, hashed, MACed or used as AAD. It is the
RFC 8785 subset the protocol allows: objects, arrays, strings, ``true``/``false``/``null``
and integers in the JavaScript-safe range; member names sorted by their UTF-16 code units.
``parse_canonical`` is the receiving side: a body is accepted only if re-encoding what was
parsed gives back exactly the same bytes, so that two implementations can never disagree
about what was signed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, Final

from postbox.crypto.errors import EncodingError, NonCanonical

# Fixed decoded lengths (PROTOCOL.md §1). Anything else is rejected.
SALT_BYTES: Final = 16
CHALLENGE_BYTES: Final = 32
NONCE_BYTES: Final = 24
KEY_BYTES: Final = 32  # mk, file key, public key, commit, hash, root
SEALED_KEY_BYTES: Final = 80  # crypto_box_seal of a 32-byte key
SIGNATURE_BYTES: Final = 64
DIGEST_BYTES: Final = 64
ID_BYTES: Final = 16  # kids and every id
CODE_BYTES: Final = 20  # recovery key and activation code

MAX_SAFE_INTEGER: Final = 2**53 - 1
MAX_DEPTH: Final = 32

_B64_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, size: int | None = None) -> bytes:
    """Decode strict base64url without padding; if ``size`` is given, require that length.

    Rejects padding, characters outside ``[A-Za-z0-9_-]``, a length ≡ 1 (mod 4) and
    non-zero unused trailing bits (by re-encoding and comparing).
    """
    if not isinstance(text, str):
        raise EncodingError("b64 value must be a string")
    if len(text) % 4 == 1 or not _B64_ALPHABET.fullmatch(text):
        raise EncodingError("not strict base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked above
        raise EncodingError("not strict base64url") from exc
    if b64e(raw) != text:
        raise EncodingError("non-zero trailing bits in base64url")
    if size is not None and len(raw) != size:
        raise EncodingError(f"expected {size} bytes, got {len(raw)}")
    return raw


def u32(n: int) -> bytes:
    """4-byte big-endian unsigned integer."""
    if not 0 <= n < 2**32:
        raise EncodingError("u32 out of range")
    return n.to_bytes(4, "big")


# --- canonical JSON ----------------------------------------------------------------------

# json's C string encoder with ensure_ascii=False escapes exactly `"` `\` and U+0000..U+001F,
# using \b \t \n \f \r and lower-case \u00xx for the rest: RFC 8785 §3.2.2.2 to the letter.
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _utf16_key(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _emit(value: Any, out: list[str], depth: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonical("integer outside +-(2^53-1)")
        out.append(str(int(value)))
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise NonCanonical("nesting deeper than 32")
        for name in value:
            if not isinstance(name, str):
                raise NonCanonical("member names must be strings")
        out.append("{")
        first = True
        for name in sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(name))
            out.append(":")
            _emit(value[name], out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise NonCanonical("nesting deeper than 32")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out, depth + 1)
        out.append("]")
    else:
        raise NonCanonical(f"{type(value).__name__} is not allowed in canonical JSON")


def cj(value: Any) -> bytes:
    """The canonical JSON encoding of ``value`` as UTF-8 bytes (PROTOCOL.md §1).

    Raises :class:`NonCanonical` for floats, unsafe integers, lone surrogates, non-string
    member names, unsupported types and nesting deeper than 32.
    """
    out: list[str] = []
    _emit(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NonCanonical("lone surrogate in a string") from exc


def _reject_float(text: str) -> Any:
    raise NonCanonical("numbers must be integers")


def _reject_constant(text: str) -> Any:
    raise NonCanonical(f"{text} is not allowed")


def _parse_int(text: str) -> int:
    # Bound the text before int() so a megabyte of digits cannot cost quadratic time.
    if len(text) > 17:
        raise NonCanonical("integer outside +-(2^53-1)")
    n = int(text)
    if not -MAX_SAFE_INTEGER <= n <= MAX_SAFE_INTEGER:
        raise NonCanonical("integer outside +-(2^53-1)")
    return n


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise NonCanonical("duplicate member name")
    return obj


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_pairs,
    parse_float=_reject_float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
    strict=True,
)


def parse_json(body: bytes) -> Any:
    """Parse strict JSON (strict UTF-8, no duplicates, integers only, safe range).

    This does not require canonical form; use :func:`parse_canonical` for anything that is
    signed, hashed or AEAD-bound.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise NonCanonical("body must be bytes")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NonCanonical("body is not UTF-8") from exc
    try:
        value, end = _decoder.raw_decode(text)
    except NonCanonical:
        raise
    except (ValueError, RecursionError) as exc:
        raise NonCanonical("body is not JSON") from exc
    if end != len(text):
        raise NonCanonical("trailing data after JSON")
    return value


def parse_canonical(body: bytes) -> Any:
    """Parse ``body`` and accept it only if it is exactly ``cj`` of what it parses to."""
    value = parse_json(body)
    if cj(value) != bytes(body):
        raise NonCanonical("body is not canonical JSON")
    return value
