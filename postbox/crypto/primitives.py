"""Thin, typed wrappers over the libsodium primitives the protocol uses.

``H`` is BLAKE2b (PROTOCOL.md §1). Everything else forwards to PyNaCl's bindings and
turns libsodium failures into the project's own error names.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from postbox.crypto.encoding import KEY_BYTES, NONCE_BYTES, SIGNATURE_BYTES
from postbox.crypto.errors import BadSignature, DecryptionFailed, InvalidKey

SEED_BYTES: Final = 32
PUBLIC_KEY_BYTES: Final = 32
SEALBOX_OVERHEAD: Final = 48


def H(data: bytes, n: int = 32, *, key: bytes | None = None) -> bytes:
    """BLAKE2b with an ``n``-byte digest, optionally keyed (``H(key=K, data, n)``)."""
    if key is None:
        return hashlib.blake2b(data, digest_size=n).digest()
    return hashlib.blake2b(data, digest_size=n, key=key).digest()


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)


def random_bytes(n: int) -> bytes:
    return bytes(sodium.randombytes(n))


# --- Ed25519 -----------------------------------------------------------------------------
def sign_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, libsodium secret key) of the Ed25519 key with this 32-byte seed."""
    if len(seed) != SEED_BYTES:
        raise InvalidKey("Ed25519 seed must be 32 bytes")
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    return bytes(pk), bytes(sk)


@functools.lru_cache(maxsize=8)
def _signing_key(seed: bytes) -> bytes:
    # Expanding a seed costs a scalar multiplication, as much as the signature itself; a
    # server signs every receipt and tree head with the same few keys.
    return sign_keypair(seed)[1]


def signing_public_key(seed: bytes) -> bytes:
    """The public key of the Ed25519 key with this seed (cached like :func:`sign`)."""
    if len(seed) != SEED_BYTES:
        raise InvalidKey("Ed25519 seed must be 32 bytes")
    return _signing_key(bytes(seed))[SEED_BYTES:]  # libsodium's sk is seed || pk


def sign(seed: bytes, message: bytes) -> bytes:
    """Detached Ed25519 signature by the key with this seed."""
    if len(seed) != SEED_BYTES:
        raise InvalidKey("Ed25519 seed must be 32 bytes")
    return bytes(sodium.crypto_sign(message, _signing_key(bytes(seed)))[:SIGNATURE_BYTES])


#: public keys known to be prime-order points (a pure function of the key; bounded)
_VALID_POINTS: set[bytes] = set()
_VALID_POINTS_MAX: Final = 100_000


def _is_valid_point(pk: bytes) -> bool:
    # The subgroup check is a scalar multiplication (as much as a verification); a server
    # verifies many signatures by the same keys.
    key = bytes(pk)
    if key in _VALID_POINTS:
        return True
    if not sodium.crypto_core_ed25519_is_valid_point(key):
        return False
    if len(_VALID_POINTS) >= _VALID_POINTS_MAX:
        _VALID_POINTS.clear()
    _VALID_POINTS.add(key)
    return True


def verify(pk: bytes, message: bytes, signature: bytes) -> None:
    """Verify a detached Ed25519 signature; raise :class:`BadSignature` otherwise.

    libsodium rejects non-canonical S (S ≥ L) and small-order R and public keys; the key
    is also required to be a prime-order point (:func:`check_sign_pk`), so that keys with
    a torsion component (which libsodium's verify accepts) never verify anything and one
    signature cannot be valid under several encodings of "the same" key.
    """
    if len(pk) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature("signature or key has the wrong size")
    if not _is_valid_point(pk):
        raise BadSignature("public key is not a valid prime-order point")
    try:
        sodium.crypto_sign_open(signature + message, pk)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def check_sign_pk(pk: bytes) -> None:
    """Reject an Ed25519 public key libsodium would not accept (small order, non-canonical)."""
    if len(pk) != PUBLIC_KEY_BYTES:
        raise InvalidKey("Ed25519 public key must be 32 bytes")
    # canonical encoding, on the curve, in the main subgroup, not of small order
    if not sodium.crypto_core_ed25519_is_valid_point(pk):
        raise InvalidKey("Ed25519 public key rejected")


# --- X25519 sealed boxes -----------------------------------------------------------------
def box_keypair(sk: bytes) -> tuple[bytes, bytes]:
    """(public key, secret key) of the X25519 key with this 32-byte secret."""
    if len(sk) != KEY_BYTES:
        raise InvalidKey("X25519 secret key must be 32 bytes")
    return bytes(sodium.crypto_scalarmult_base(sk)), sk


def check_box_pk(pk: bytes) -> None:
    """Reject a low-order (or wrong-size) X25519 public key."""
    if len(pk) != PUBLIC_KEY_BYTES:
        raise InvalidKey("X25519 public key must be 32 bytes")
    probe = b"\x01" + bytes(31)
    try:
        # libsodium's scalarmult fails when the result is all zeros, i.e. for low-order points.
        sodium.crypto_scalarmult(probe, pk)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise InvalidKey("X25519 public key has low order") from exc


def seal(message: bytes, pk: bytes) -> bytes:
    """crypto_box_seal to an X25519 public key."""
    check_box_pk(pk)
    return bytes(sodium.crypto_box_seal(message, pk))


def seal_open(sealed: bytes, pk: bytes, sk: bytes) -> bytes:
    try:
        return bytes(sodium.crypto_box_seal_open(sealed, pk, sk))
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise DecryptionFailed("sealed box does not open") from exc


# --- XChaCha20-Poly1305-IETF ---------------------------------------------------------------
def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise InvalidKey("AEAD key or nonce has the wrong size")
    return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key))


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise DecryptionFailed("AEAD key or nonce has the wrong size")
    try:
        return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key))
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise DecryptionFailed("AEAD does not open") from exc
