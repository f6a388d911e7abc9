"""The recovery key (PROTOCOL.md §4): a second way to open the key bundle.

``rk`` is 20 random bytes, shown once for printing as 32 Crockford-base32 symbols in 8
groups of 4 plus a checksum group, the first 4 Crockford symbols of ``H(rk)``
(BLAKE2b-256; 20 bits, so a typo slips through with probability 2^-20)::

    ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789-CHKS

From it::

    recovery kek      = H(key=rk, "postbox/v1/recovery-kek")
    recovery auth key = Ed25519 from seed H(key=rk, "postbox/v1/recovery-auth")

The recovery bundle is a bundle of kind ``recovery`` (null salt/ops/mem) sealed under the
recovery kek; its generation counter is independent of the pass bundle's (see
:mod:`postbox.crypto.bundle` for why, and for the staleness weakness after key rotation).

Parsing forgives what people do when typing from paper: any case, spaces, tabs, line
breaks and hyphens (also the Unicode dashes U+2010..U+2015 and U+2212) anywhere,
full-width forms (NFKC), I/L read as 1 and O as 0. Everything else, a wrong length or a
wrong checksum is :class:`BadRecoveryKey`.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Final

from postbox.crypto import crockford, domain
from postbox.crypto.bundle import (
    Bundle,
    DerivedKeys,
    PrivateKeys,
    check_bundle,
    open_bundle,
    seal_bundle,
)
from postbox.crypto.encoding import CODE_BYTES
from postbox.crypto.errors import BadRecoveryKey, EncodingError, MalformedObject
from postbox.crypto.primitives import H, equal, random_bytes, sign_keypair

RECOVERY_KEY_BYTES: Final = CODE_BYTES  # 20
KEY_SYMBOLS: Final = 32  # 20 bytes in 5-bit symbols
CHECKSUM_SYMBOLS: Final = 4
GROUP: Final = 4
#: removed before decoding; identical list in recovery.js
SEPARATORS: Final = frozenset(" \t\r\n-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")


def generate_recovery_key(*, rk: bytes | None = None) -> bytes:
    """20 fresh random bytes (or ``rk``, checked, for vectors)."""
    rk = rk if rk is not None else random_bytes(RECOVERY_KEY_BYTES)
    _check_rk(rk)
    return rk


def _check_rk(rk: object) -> None:
    if not isinstance(rk, bytes) or len(rk) != RECOVERY_KEY_BYTES:
        raise BadRecoveryKey("a recovery key is 20 bytes")


def checksum(rk: bytes) -> str:
    """The first 4 Crockford symbols of H(rk) (BLAKE2b-256)."""
    _check_rk(rk)
    return crockford.encode(H(rk)[:5])[:CHECKSUM_SYMBOLS]


def format_recovery_key(rk: bytes) -> str:
    """``XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-CCCC`` (upper case, for printing)."""
    _check_rk(rk)
    return crockford.group(crockford.encode(rk) + checksum(rk), GROUP, "-")


def clean_symbols(text: str) -> str:
    """NFKC, drop separators, upper-case, map I/L→1 O→0; BadRecoveryKey on anything else.

    Shared with activation codes (:mod:`postbox.crypto.activation`).
    """
    if not isinstance(text, str):
        raise BadRecoveryKey("expected text")
    kept = "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch not in SEPARATORS)
    # crockford.normalize upper-cases with str.upper(); restrict to ASCII first so that a
    # non-ASCII letter that upper-cases to an ASCII one (dotless i → I) is refused, not read as 1.
    if not kept.isascii():
        raise BadRecoveryKey("not a Crockford base32 character")
    try:
        return crockford.normalize(kept)
    except EncodingError as exc:
        raise BadRecoveryKey("not a Crockford base32 character") from exc


def parse_recovery_key(text: str) -> bytes:
    """The 20-byte rk from what the user typed; BadRecoveryKey on a typo or wrong length."""
    symbols = clean_symbols(text)
    if len(symbols) != KEY_SYMBOLS + CHECKSUM_SYMBOLS:
        raise BadRecoveryKey(
            f"a recovery key has {KEY_SYMBOLS + CHECKSUM_SYMBOLS} characters, got {len(symbols)}"
        )
    rk = crockford.decode(symbols[:KEY_SYMBOLS])
    if not equal(checksum(rk).encode("ascii"), symbols[KEY_SYMBOLS:].encode("ascii")):
        raise BadRecoveryKey("checksum does not match: a character is mistyped")
    return rk


def recovery_keys(rk: bytes) -> DerivedKeys:
    """Recovery kek and recovery auth key (seed and public key)."""
    _check_rk(rk)
    seed = H(domain.RECOVERY_AUTH, key=rk)
    pk, _ = sign_keypair(seed)
    return DerivedKeys(kek=H(domain.RECOVERY_KEK, key=rk), auth_seed=seed, auth_pk=pk)


def seal_recovery_bundle(
    private_keys: PrivateKeys, rk: bytes, account: str, *, nonce: bytes | None = None
) -> tuple[Bundle, DerivedKeys]:
    """Seal ``private_keys`` (at its ``gen``) as a recovery bundle; returns the keys too."""
    keys = recovery_keys(rk)
    return seal_bundle(private_keys, keys.kek, account, kind="recovery", nonce=nonce), keys


def open_recovery_bundle(
    bundle: Any, rk: bytes, account: str, *, min_gen: int | None = None
) -> PrivateKeys:
    """Open a recovery bundle (kind must be ``recovery``); see ``bundle.open_bundle``."""
    b = check_bundle(bundle)
    if b["kind"] != "recovery":
        raise MalformedObject("bundle.kind: expected recovery")
    return open_bundle(b, recovery_keys(rk).kek, account, min_gen=min_gen)
