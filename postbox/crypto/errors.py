"""The one error tree of the crypto core.

Every failure raised by ``postbox.crypto`` and ``postbox.keys.merkle`` is a subclass of
:class:`CryptoError`. The class name is the stable, cross-language error name: the
JavaScript core throws errors whose ``name`` is the same string, and the ``reject`` lists
in ``tests/vectors/*.json`` name the expected error by it.

Messages never contain key material, plaintext or passphrase-derived values.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every failure in the crypto core."""


# --- encodings -------------------------------------------------------------------------
class EncodingError(CryptoError):
    """Bad b64 (padding, alphabet, trailing bits) or a wrong fixed length."""


class NonCanonical(CryptoError):
    """JSON that is not exactly the canonical encoding (PROTOCOL.md §1)."""


class MalformedObject(CryptoError):
    """A v1 object with a missing, unknown or mistyped member."""


class BadPadding(CryptoError):
    """Padmé padding that is not exactly what the length rule produces."""


# --- signatures, AEAD, keys ------------------------------------------------------------
class BadSignature(CryptoError):
    """An Ed25519 signature that does not verify, or a MAC that does not match."""


class DecryptionFailed(CryptoError):
    """An AEAD or sealed box that does not open."""


class InvalidKey(CryptoError):
    """A public key libsodium would reject (small order, non-canonical, wrong size)."""


class KeyIdMismatch(CryptoError):
    """A kid that is not the one derived from its key."""


class CertificateInvalid(CryptoError):
    """A certificate whose contents break a rule of PROTOCOL.md §3."""


class CertificateExpired(CryptoError):
    """A certificate used outside its validity period."""


class CertificateRevoked(CryptoError):
    """A certificate revoked (or superseded) before the time it is used at."""


class OrgCertificationMissing(CryptoError):
    """An identity that must be certified by its organisation's root is not."""


class IdentityChanged(CryptoError):
    """A signer's identity differs from the pinned one and is not linked to it."""


class WeakPassphrase(CryptoError):
    """A passphrase refused at creation (too weak or with unstable code points)."""


class UnsupportedParameters(CryptoError):
    """Argon2id parameters outside the range clients accept."""


class BadRecoveryKey(CryptoError):
    """A recovery key or activation code that is malformed or fails its checksum."""


class StaleGeneration(CryptoError):
    """A key bundle older than the newest generation the client has seen."""


# --- envelope --------------------------------------------------------------------------
class MalformedEnvelope(CryptoError):
    """An envelope whose structure breaks PROTOCOL.md §5."""


class NotARecipient(CryptoError):
    """The opening mailbox is neither in ``to`` nor the sender's own mailbox."""


class KeySubstitution(CryptoError):
    """Key-substitution alarm: the key a message was sealed to is not one we hold."""


class KeyCommitmentMismatch(CryptoError):
    """The unsealed message key does not match the header's commitment."""


class ForkDetected(CryptoError):
    """Fork alarm: two tree heads that cannot both belong to one append-only log."""


# --- attachments -----------------------------------------------------------------------
class TruncatedStream(CryptoError):
    """An attachment stream that ends before its final chunk."""


class StreamFramingError(CryptoError):
    """Chunks out of place: wrong tag, wrong size, or data after the final chunk."""


class BlobLengthMismatch(CryptoError):
    """A blob whose length differs from the one stated (or no valid length at all)."""


class BlobHashMismatch(CryptoError):
    """A blob whose hash differs from the one stated."""


# --- transparency ----------------------------------------------------------------------
class BadProof(CryptoError):
    """A Merkle inclusion or consistency proof that does not verify."""


class StaleTreeHead(CryptoError):
    """A tree head older than allowed or older than the last one seen."""


class BrokenChain(CryptoError):
    """A per-subject event chain with a gap, a wrong link or a duplicate seq."""


# --- receipts ----------------------------------------------------------------------------
class ReceiptMismatch(CryptoError):
    """A valid receipt, delivery record or countersignature about another message, sender,
    digest or read receipt than the one it is checked against."""
