"""Server secrets, kept outside the database in ``<data-dir>/secrets`` (mode 0600).

Each secret is one file of 32 random bytes, created once and never rewritten. Creation is
race-free across processes: the bytes are written to a private temporary file and linked
into place with ``os.link``, which fails if another process won; the loser then reads the
winner's file. So several servers (and the operator CLI) started with the same data
directory share the same secrets.

| file | what it is |
| --- | --- |
| ``fake-salt.key`` | K_fake: salts for unknown login names (PROTOCOL.md §4); never changes |
| ``pepper.key`` | K_pepper: the server stores only H(key=K_pepper, auth_pk) |
| ``bundle-wrap.key`` | wraps key bundles at rest (XChaCha20-Poly1305) |
| ``token.key`` | signs access tokens (HS256) |
| ``log.seed`` | Ed25519 seed of the transparency log key (tree heads) |
| ``receipt.seed`` | Ed25519 seed of the receipt key (receipts, delivery events) |

Losing ``log.seed`` or ``receipt.seed`` breaks every client's pinned keys; back them up
with the database (docs/operations.md).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from postbox.crypto.primitives import random_bytes, sign_keypair

SECRET_BYTES: Final = 32
NAMES: Final = (
    "fake-salt.key",
    "pepper.key",
    "bundle-wrap.key",
    "token.key",
    "log.seed",
    "receipt.seed",
)


class SecretsError(RuntimeError):
    """The secrets folder is unusable (wrong permissions, wrong sizes)."""


@dataclass(frozen=True)
class Secrets:
    fake_salt_key: bytes = field(repr=False)
    pepper: bytes = field(repr=False)
    bundle_wrap_key: bytes = field(repr=False)
    token_key: bytes = field(repr=False)
    log_seed: bytes = field(repr=False)
    receipt_seed: bytes = field(repr=False)

    @property
    def log_pk(self) -> bytes:
        return sign_keypair(self.log_seed)[0]

    @property
    def receipt_pk(self) -> bytes:
        return sign_keypair(self.receipt_seed)[0]


def _load_or_create(folder: Path, name: str, *, create: bool) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SecretsError(
                f"{path} is missing, but the database already holds data that depends on it: "
                "restore the secrets folder from the same backup as the database "
                "(docs/operations.md); refusing to make a new one"
            ) from None
        tmp = folder / f".{name}.{os.getpid()}.{random_bytes(6).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, random_bytes(SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic; fails if another process created it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        _fsync_dir(folder)
        data = path.read_bytes()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretsError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    if len(data) != SECRET_BYTES:
        raise SecretsError(f"{path} must hold exactly {SECRET_BYTES} bytes")
    return data


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_secrets(folder: Path, *, create: bool = True) -> Secrets:
    """Load every secret, creating the folder (0700) and missing files (0600) on first use.

    With ``create=False`` (a database that already holds data), a missing file is an
    error: a new pepper or bundle key would silently lock every account out."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        os.chmod(folder, 0o700)
    values = [_load_or_create(folder, name, create=create) for name in NAMES]
    return Secrets(*values)
