"""The opened key bundle, held in memory only while the client needs it.

A :class:`Keyring` is what a successful login (or :meth:`Account.open_keys`) yields: the
account's ``private_keys`` plus the key that opened its bundle, so that the client can seal
the next generation (new team keys, the last verified tree head, the own chain head) without
asking for the passphrase again. It never touches the disk; the encrypted bundle on the
server is the only persistent store of private keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postbox.client.errors import UsageError
from postbox.crypto import bundle as bundles
from postbox.crypto.bundle import (
    BoxKey,
    Bundle,
    DerivedKeys,
    Kind,
    PrivateKeys,
    SignKey,
    TeamKey,
)
from postbox.crypto.encoding import SALT_BYTES, b64d, b64e
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import box_keypair


@dataclass(frozen=True)
class Keyring:
    account: str
    private_keys: PrivateKeys = field(repr=False)
    #: which bundle was opened (``pass``, or ``recovery`` after a recovery login)
    kind: Kind
    kek: bytes = field(repr=False)
    #: the auth key of the method that opened it (login signatures for sensitive changes)
    auth_seed: bytes = field(repr=False)
    salt: bytes | None = None
    ops: int | None = None
    mem: int | None = None

    @classmethod
    def of_bundle(
        cls,
        account: str,
        private_keys: PrivateKeys,
        bundle: Bundle,
        kind: Kind,
        keys: DerivedKeys,
    ) -> Keyring:
        """The keyring of a bundle opened (or just sealed) with ``keys``; a pass bundle's salt
        and Argon2id parameters are kept, so the next generation is sealed the same way."""
        salt = bundle["salt"]
        return cls(
            account=account,
            private_keys=private_keys,
            kind=kind,
            kek=keys.kek,
            auth_seed=keys.auth_seed,
            salt=None if salt is None else b64d(salt, SALT_BYTES),
            ops=bundle["ops"],
            mem=bundle["mem"],
        )

    @property
    def gen(self) -> int:
        return self.private_keys["gen"]

    @property
    def identity(self) -> SignKey:
        return bundles.current_identity(self.private_keys)

    @property
    def identities(self) -> list[SignKey]:
        return bundles.identity_keys(self.private_keys)

    @property
    def encryption(self) -> BoxKey:
        return bundles.current_encryption(self.private_keys)

    @property
    def encryption_keys(self) -> list[BoxKey]:
        return bundles.encryption_keys(self.private_keys)

    def team_keys(self, team: str) -> list[TeamKey]:
        """This team's keys held by the account, oldest first."""
        return [k for k in bundles.team_keys(self.private_keys) if k.team == team]

    def team_key(self, team: str, kid: str) -> TeamKey | None:
        for key in self.team_keys(team):
            if key.kid == kid:
                return key
        return None

    @property
    def own_kids(self) -> set[str]:
        """Kids of every key this account made (for the owner's self-check)."""
        pks = self.private_keys
        return {e["kid"] for e in pks["identity"]} | {e["kid"] for e in pks["encrypt"]}

    def seal(self, private_keys: PrivateKeys) -> Bundle:
        """Seal ``private_keys`` (already at its new ``gen``) as this keyring's bundle kind."""
        if self.kind != "pass":
            raise UsageError("set a new passphrase first: a recovery session seals no bundle")
        return bundles.seal_bundle(
            private_keys,
            self.kek,
            self.account,
            kind="pass",
            salt=self.salt,
            ops=self.ops,
            mem=self.mem,
        )

    def with_keys(self, private_keys: PrivateKeys) -> Keyring:
        return Keyring(
            account=self.account,
            private_keys=private_keys,
            kind=self.kind,
            kek=self.kek,
            auth_seed=self.auth_seed,
            salt=self.salt,
            ops=self.ops,
            mem=self.mem,
        )


def add_team_key(private_keys: PrivateKeys, team: str, sk: bytes) -> PrivateKeys:
    """A copy of ``private_keys`` that also holds team ``team``'s secret key ``sk``."""
    entry = {"team": team, "kid": derive_kid("encrypt", box_keypair(sk)[0]), "sk": b64e(sk)}
    if entry in private_keys["teams"]:
        return private_keys
    copy: dict[str, Any] = dict(private_keys)
    copy["teams"] = [*private_keys["teams"], entry]
    return bundles.check_private_keys(copy)


def with_views(
    private_keys: PrivateKeys, *, log: dict[str, Any] | None, chain: dict[str, Any] | None
) -> PrivateKeys:
    """A copy with the last verified tree head (``log``) and own chain head (``chain``)."""
    copy: dict[str, Any] = dict(private_keys)
    copy["log"] = log
    copy["chain"] = chain
    return bundles.check_private_keys(copy)
