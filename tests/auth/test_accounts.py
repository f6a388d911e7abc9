"""``AccountService.create`` (the call activation makes) and what it stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update
from support.accounts import Account, Client, make_account, seed

from postbox.crypto.bundle import seal_bundle, with_gen
from postbox.crypto.encoding import cj
from postbox.crypto.primitives import H
from postbox.mailbox.appkeys import ACCOUNTS, DB, SECRETS
from postbox.mailbox.db.schema import accounts, bundles, credentials
from postbox.mailbox.errors import BadRequest, Conflict


async def _create(client: Client, account: Account, **changes: Any) -> None:
    args: dict[str, Any] = {
        "account_id": account.id,
        "kind": account.kind,
        "org_id": account.org,
        "login": account.login,
        "identity_verified": False,
        "language": "tr",
        "auth_pk": account.keys.auth_pk,
        "recovery_auth_pk": account.recovery.auth_pk,
        "pass_bundle": dict(account.pass_bundle),
        "recovery_bundle": dict(account.recovery_bundle),
        "now": 5,
    }
    args.update(changes)
    async with client.app[DB].write() as conn:
        await client.app[ACCOUNTS].create(conn, **args)


async def test_create_stores_peppered_verifiers_and_wrapped_bundles(client: Client) -> None:
    account = make_account(" Anna@Example.ORG ")
    await _create(client, account)
    pepper = client.app[SECRETS].pepper
    async with client.app[DB].read() as conn:
        row = (await conn.execute(select(accounts))).mappings().one()
        cred = (await conn.execute(select(credentials))).mappings().one()
        wrapped = {r["kind"]: r for r in (await conn.execute(select(bundles))).mappings().all()}
        record = await client.app[ACCOUNTS].get(conn, account.id)
        served = await client.app[ACCOUNTS].bundle(conn, account.id, "pass")
    assert row["login"] == "Anna@example.org"
    assert (row["status"], row["language"], row["identity_verified"]) == ("active", "tr", False)
    assert record is not None and record.login == "Anna@example.org"
    assert bytes(cred["pass_verifier"]) == H(account.keys.auth_pk, key=pepper)
    assert bytes(cred["recovery_verifier"]) == H(account.recovery.auth_pk, key=pepper)
    assert (bytes(cred["salt"]), cred["ops"], cred["mem"]) == (account.salt, 3, 64 << 20)
    assert set(wrapped) == {"pass", "recovery"}
    for kind, bundle in (("pass", account.pass_bundle), ("recovery", account.recovery_bundle)):
        assert wrapped[kind]["gen"] == 1
        stored = bytes(wrapped[kind]["wrapped"])
        assert cj(bundle) not in stored
        assert bundle["ct"].encode() not in stored
    assert served == account.pass_bundle


async def test_a_wrapped_bundle_is_bound_to_its_account(client: Client) -> None:
    anna = await seed(client.app, make_account("anna@example.org"))
    ben = await seed(client.app, make_account("ben@example.org"))
    async with client.app[DB].write() as conn:
        annas: bytes = (
            await conn.execute(
                select(bundles.c.wrapped).where(
                    bundles.c.account_id == anna.id, bundles.c.kind == "pass"
                )
            )
        ).scalar_one()
        await conn.execute(
            update(bundles)
            .where(bundles.c.account_id == ben.id, bundles.c.kind == "pass")
            .values(wrapped=annas)
        )
    async with client.app[DB].read() as conn:
        with pytest.raises(RuntimeError, match="does not unwrap"):
            await client.app[ACCOUNTS].bundle(conn, ben.id, "pass")


async def test_create_refuses_bad_input(client: Client) -> None:
    account = make_account("anna@example.org")
    gen2 = dict(
        seal_bundle(
            with_gen(account.private_keys, 2),
            account.keys.kek,
            account.id,
            kind="pass",
            salt=account.salt,
            ops=3,
            mem=64 << 20,
        )
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"account_id": "not-an-id"}, "invalid-account"),
        ({"kind": "root"}, "invalid-account"),
        ({"kind": "caseworker"}, "invalid-account"),  # staff need an organisation
        ({"language": "Deutsch"}, "invalid-account"),
        ({"login": "\u0007bell"}, "invalid-login"),
        ({"login": "x" * 300}, "invalid-login"),
        ({"auth_pk": bytes(32)}, "invalid-auth-pk"),
        ({"recovery_auth_pk": b"\x01" * 31}, "invalid-auth-pk"),
        ({"pass_bundle": dict(account.recovery_bundle)}, "invalid-bundle"),
        ({"recovery_bundle": dict(account.pass_bundle)}, "invalid-bundle"),
        ({"pass_bundle": gen2}, "invalid-bundle"),
        ({"pass_bundle": {**account.pass_bundle, "mem": 1024}}, "invalid-bundle"),
    ]
    for changes, code in cases:
        with pytest.raises(BadRequest) as info:
            await _create(client, account, **changes)
        assert info.value.code == code, changes
    async with client.app[DB].read() as conn:
        assert (await conn.execute(select(accounts))).first() is None


async def test_taken_login_and_account_id(client: Client) -> None:
    first = make_account("anna@example.org")
    await _create(client, first)
    with pytest.raises(Conflict) as info:
        await _create(client, make_account("anna@EXAMPLE.org"))
    assert info.value.code == "login-taken"
    with pytest.raises(Conflict) as info:
        await _create(client, make_account("other@example.org"), account_id=first.id)
    assert info.value.code == "account-exists"


async def test_concurrent_activations_of_one_name(client: Client) -> None:
    """Two transactions create the same login name at once: one wins, one gets a Conflict."""
    one, two = make_account("anna@example.org"), make_account("anna@example.org")
    first_inserted = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with client.app[DB].write() as conn:
            await client.app[ACCOUNTS].create(
                conn,
                account_id=one.id,
                kind="citizen",
                org_id=None,
                login=one.login,
                identity_verified=True,
                language="de",
                auth_pk=one.keys.auth_pk,
                recovery_auth_pk=one.recovery.auth_pk,
                pass_bundle=dict(one.pass_bundle),
                recovery_bundle=dict(one.recovery_bundle),
                now=1,
            )
            first_inserted.set()
            await release.wait()

    task = asyncio.create_task(first())
    await first_inserted.wait()
    second = asyncio.create_task(_create(client, two))
    await asyncio.sleep(0.2)  # the second is now blocked (PostgreSQL: unique index; SQLite: writer)
    release.set()
    await task
    with pytest.raises(Conflict) as info:
        await second
    assert info.value.code == "login-taken"
