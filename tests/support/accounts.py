"""Accounts for tests: real keys and bundles, seeded through ``AccountService.create``.

The activation route belongs to the organisations feature; auth tests seed accounts
directly, inside ``db.write()``, through the same service call activation uses.

Two ways to make the pass keys:

* ``make_account(login, passphrase="…")``: real Argon2id (``seal_pass_bundle``), ~0.1 s;
  used where the test is about the passphrase itself (full login, passphrase change);
* ``make_account(login)``: the 64 "derived" bytes are random, so no Argon2id runs. The
  server cannot tell the difference: it only ever sees the auth public key and an opaque
  bundle. The bundle still opens with the account's kek.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from postbox.crypto.bundle import (
    DEFAULT_MEM,
    DEFAULT_OPS,
    DERIVED_BYTES,
    Bundle,
    DerivedKeys,
    PrivateKeys,
    build_private_keys,
    derive_pass_keys,
    keys_from_output,
    seal_bundle,
    seal_pass_bundle,
)
from postbox.crypto.encoding import ID_BYTES, SALT_BYTES, b64d, b64e
from postbox.crypto.login import Method, sign_login
from postbox.crypto.primitives import random_bytes
from postbox.crypto.recovery import generate_recovery_key, seal_recovery_bundle
from postbox.mailbox.appkeys import ACCOUNTS, CLOCK, DB, SETTINGS

Client = TestClient[web.Request, web.Application]
#: ``make_client(**settings_changes)`` (tests/auth/conftest.py): the app with the fake clock
MakeClient = Callable[..., Awaitable[Client]]
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class FakeClock:
    """A controllable ``Clock`` (integer ms): ``create_app(settings, clock=FakeClock())``."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Account:
    id: str
    login: str
    kind: str
    org: str | None
    keys: DerivedKeys  # pass kek and auth key
    salt: bytes
    ops: int
    mem: int
    recovery_key: bytes
    recovery: DerivedKeys  # recovery kek and recovery auth key
    private_keys: PrivateKeys
    pass_bundle: Bundle
    recovery_bundle: Bundle
    passphrase: str | None = field(default=None, repr=False)


def make_account(
    login: str,
    *,
    passphrase: str | None = None,
    ops: int = DEFAULT_OPS,
    mem: int = DEFAULT_MEM,
    kind: str = "citizen",
    org: str | None = None,
    account_id: str | None = None,
) -> Account:
    account = account_id or b64e(random_bytes(ID_BYTES))
    pks = build_private_keys(gen=1, identity=[random_bytes(32)], encrypt=[(random_bytes(32), None)])
    salt = random_bytes(SALT_BYTES)
    if passphrase is not None:
        pass_bundle, keys = seal_pass_bundle(
            pks, passphrase, account, salt=salt, ops=ops, mem=mem, check_passphrase=False
        )
    else:
        keys = keys_from_output(random_bytes(DERIVED_BYTES))
        pass_bundle = seal_bundle(pks, keys.kek, account, kind="pass", salt=salt, ops=ops, mem=mem)
    rk = generate_recovery_key()
    recovery_bundle, rkeys = seal_recovery_bundle(pks, rk, account)
    return Account(
        id=account,
        login=login,
        kind=kind,
        org=org,
        keys=keys,
        salt=salt,
        ops=ops,
        mem=mem,
        recovery_key=rk,
        recovery=rkeys,
        private_keys=pks,
        pass_bundle=pass_bundle,
        recovery_bundle=recovery_bundle,
        passphrase=passphrase,
    )


async def seed(app: web.Application, account: Account, *, now: int = NOW) -> Account:
    """Store the account through ``AccountService.create`` in one write transaction."""
    async with app[DB].write() as conn:
        await app[ACCOUNTS].create(
            conn,
            account_id=account.id,
            kind=account.kind,
            org_id=account.org,
            login=account.login,
            identity_verified=True,
            language="de",
            auth_pk=account.keys.auth_pk,
            recovery_auth_pk=account.recovery.auth_pk,
            pass_bundle=dict(account.pass_bundle),
            recovery_bundle=dict(account.recovery_bundle),
            now=now,
        )
    return account


async def new_account(client: Client, login: str, **kw: Any) -> Account:
    """``make_account`` and ``seed`` in one step."""
    return await seed(client.app, make_account(login, **kw), now=_now(client))


def _now(client: Client) -> int:
    return client.app[CLOCK]()


def origin(client: Client) -> str:
    return client.app[SETTINGS].origin


async def challenge(client: Client, login: str, **kw: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/challenge", json={"login": login}, **kw)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def proof(client: Client, seed_: bytes, challenge_b64: str, login: str, method: Method) -> str:
    """The §2 login signature (b64) over the server's origin."""
    return b64e(sign_login(seed_, b64d(challenge_b64, 32), origin(client), login, method))


async def attempt(
    client: Client,
    login: str,
    keys: DerivedKeys,
    *,
    method: Method = "pass",
    challenge_b64: str | None = None,
    **kw: Any,
) -> Any:
    """Challenge (unless given) and login; returns the raw response."""
    if challenge_b64 is None:
        challenge_b64 = (await challenge(client, login, **kw))["challenge"]
    body = {
        "login": login,
        "challenge": challenge_b64,
        "auth_pk": b64e(keys.auth_pk),
        "signature": proof(client, keys.auth_seed, challenge_b64, login, method),
        "method": method,
    }
    return await client.post("/api/v1/auth/login", json=body, **kw)


async def login(
    client: Client, account: Account, *, method: Method = "pass", **kw: Any
) -> dict[str, Any]:
    """A successful login: the response body (account, tokens, expires_in, rekey)."""
    keys = account.keys if method == "pass" else account.recovery
    resp = await attempt(client, account.login, keys, method=method, **kw)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def derive_for(passphrase: str, answer: dict[str, Any]) -> DerivedKeys:
    """What a client derives from a challenge answer (real Argon2id)."""
    return derive_pass_keys(
        passphrase, b64d(answer["salt"], SALT_BYTES), answer["ops"], answer["mem"]
    )
