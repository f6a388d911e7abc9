"""The org root key file: the organisation's offline root, encrypted under a passphrase.

``postbox-desk org init`` generates the root on the admin's machine and writes it here; the
server never sees it. The file is JSON (mode 0600)::

    {"v":1,"type":"postbox-org-root","org":id,"name":str,"pk":b64,"salt":b64,"ops":n,"mem":n,
     "nonce":b64,"ct":b64}

``kek`` = the first 32 bytes of Argon2id(NFKC(passphrase), salt, ops, mem) (the bundle's
derivation, :func:`postbox.crypto.bundle.derive_pass_keys`); ``ct`` =
XChaCha20-Poly1305(kek, nonce, root seed, aad = cj(every other member)), so nothing in the
file can be changed without the passphrase noticing. Opening recomputes the public key
from the seed and compares it with ``pk``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from postbox.client.errors import UsageError
from postbox.crypto import shapes
from postbox.crypto.bundle import DEFAULT_MEM, DEFAULT_OPS, derive_pass_keys
from postbox.crypto.encoding import KEY_BYTES, NONCE_BYTES, SALT_BYTES, b64d, b64e, cj
from postbox.crypto.errors import CryptoError, KeyIdMismatch
from postbox.crypto.passphrase import check_new_passphrase
from postbox.crypto.primitives import aead_decrypt, aead_encrypt, equal, random_bytes, sign_keypair

FILE_TYPE: Final = "postbox-org-root"
SEED_BYTES: Final = 32
_SEALED_SEED: Final = SEED_BYTES + 16

ROOT_FILE_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "type": shapes.const(FILE_TYPE),
        "org": shapes.ID,
        "name": shapes.string(200),
        "pk": shapes.b64(KEY_BYTES),
        "salt": shapes.b64(SALT_BYTES),
        "ops": shapes.integer(),
        "mem": shapes.integer(),
        "nonce": shapes.b64(NONCE_BYTES),
        "ct": shapes.b64(_SEALED_SEED),
    }
)


@dataclass(frozen=True)
class OrgRootKey:
    org: str
    name: str
    pk: bytes
    seed: bytes = field(repr=False)


def _aad(header: dict[str, Any]) -> bytes:
    return cj({k: v for k, v in header.items() if k not in ("nonce", "ct")})


def seal_root_file(
    seed: bytes,
    *,
    org: str,
    name: str,
    passphrase: str,
    ops: int = DEFAULT_OPS,
    mem: int = DEFAULT_MEM,
    check_passphrase: bool = True,
) -> bytes:
    """The file's bytes for this root seed (Argon2id runs here: call it in a thread)."""
    if check_passphrase:
        check_new_passphrase(passphrase)
    salt = random_bytes(SALT_BYTES)
    kek = derive_pass_keys(passphrase, salt, ops, mem).kek
    pk, _ = sign_keypair(seed)
    header: dict[str, Any] = {
        "v": 1,
        "type": FILE_TYPE,
        "org": org,
        "name": name,
        "pk": b64e(pk),
        "salt": b64e(salt),
        "ops": ops,
        "mem": mem,
    }
    nonce = random_bytes(NONCE_BYTES)
    header["nonce"] = b64e(nonce)
    header["ct"] = b64e(aead_encrypt(kek, nonce, seed, _aad(header)))
    shapes.check(ROOT_FILE_SHAPE, header, "org root file")
    return (json.dumps(header, indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_root_header(data: bytes) -> dict[str, Any]:
    """The file's public part (org, name, pk), checked; no passphrase needed."""
    try:
        value = json.loads(data.decode("utf-8"))
        shapes.check(ROOT_FILE_SHAPE, value, "org root file")
    except (ValueError, CryptoError) as exc:
        raise UsageError(f"not an org root key file: {exc}") from exc
    return dict(value)


def open_root_file(data: bytes, passphrase: str) -> OrgRootKey:
    """Decrypt the root seed; a wrong passphrase raises ``DecryptionFailed``."""
    header = read_root_header(data)
    kek = derive_pass_keys(
        passphrase, b64d(header["salt"], SALT_BYTES), header["ops"], header["mem"]
    ).kek
    seed = aead_decrypt(
        kek, b64d(header["nonce"], NONCE_BYTES), b64d(header["ct"], _SEALED_SEED), _aad(header)
    )
    pk, _ = sign_keypair(seed)
    if not equal(pk, b64d(header["pk"], KEY_BYTES)):
        raise KeyIdMismatch("the root seed does not match the file's public key")
    return OrgRootKey(org=header["org"], name=header["name"], pk=pk, seed=seed)
