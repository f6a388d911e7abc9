"""The hash-chained audit log: recording in the caller's transaction, verification, tamper
detection, concurrent appends, and the entries the auth feature writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, insert, select, update
from support.accounts import attempt, login, new_account

from postbox.crypto.bundle import DERIVED_BYTES, keys_from_output
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import H, random_bytes
from postbox.mailbox.appkeys import AUDIT, CLOCK, DB, SECRETS
from postbox.mailbox.audit.service import GENESIS_PREV, chain_hash, entry_object
from postbox.mailbox.auth.ratelimit import Pseudonyms
from postbox.mailbox.db.schema import audit_log

Client = TestClient[web.Request, web.Application]


async def _record(client: Client, n: int, *, actor: str | None = None) -> None:
    audit, db = client.app[AUDIT], client.app[DB]
    for i in range(n):
        async with db.write() as conn:
            await audit.record(
                conn,
                action="test.event",
                actor=actor,
                subject=None,
                details={"i": i, "note": "metadata"},
                now=1000 + i,
            )


async def _verify(client: Client) -> dict[str, object]:
    async with client.app[DB].read() as conn:
        return (await client.app[AUDIT].verify(conn)).to_json()


async def test_empty_log_verifies(client: Client) -> None:
    report = await _verify(client)
    assert report == {
        "ok": True,
        "entries": 0,
        "head": {"seq": 0, "hash": b64e(GENESIS_PREV)},
        "broken_seq": None,
        "reason": None,
    }


async def test_chain_links_every_entry(client: Client) -> None:
    await _record(client, 5)
    report = await _verify(client)
    assert report["ok"] is True
    assert report["entries"] == 5
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn)
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).mappings().all()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    prev = GENESIS_PREV
    for row, entry in zip(rows, entries, strict=True):
        obj = entry_object(
            seq=row["seq"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            details=entry.details,
        )
        assert bytes(row["prev"]) == prev
        assert bytes(row["hash"]) == H(prev + cj(obj)) == chain_hash(prev, obj)
        prev = bytes(row["hash"])
    assert report["head"] == {"seq": 5, "hash": b64e(prev)}
    async with client.app[DB].read() as conn:
        page = await client.app[AUDIT].entries(conn, after=3, limit=10)
    assert [e.seq for e in page] == [4, 5]
    assert page[0].to_json()["details"] == {"i": 3, "note": "metadata"}


async def test_a_rolled_back_transaction_records_nothing(client: Client) -> None:
    async def failing_change() -> None:
        async with client.app[DB].write() as conn:
            await client.app[AUDIT].record(
                conn, action="test.event", actor=None, subject=None, details={}, now=1
            )
            raise RuntimeError("the described change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert (await _verify(client))["entries"] == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"i":2,"note":"edited"}'),
        ("details", '{"note": "x"}'),  # not canonical
        ("action", "test.other"),
        ("at", 99),
        ("actor", "AAAAAAAAAAAAAAAAAAAAAA"),
        ("prev", bytes(32)),
        ("hash", bytes(32)),
    ],
    ids=["details", "non-canonical", "action", "at", "actor", "prev", "hash"],
)
async def test_an_edited_entry_is_found(client: Client, column: str, value: object) -> None:
    await _record(client, 5)
    async with client.app[DB].write() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values({column: value}))
    report = await _verify(client)
    assert report["ok"] is False
    assert report["broken_seq"] == 3
    assert report["entries"] == 2
    assert report["head"] == {"seq": 2, "hash": report["head"]["hash"]}  # type: ignore[index]
    assert report["reason"]


async def test_a_deleted_or_inserted_entry_is_found(client: Client) -> None:
    await _record(client, 5)
    async with client.app[DB].write() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    report = await _verify(client)
    assert (report["ok"], report["broken_seq"]) == (False, 3)
    assert "2 is missing" in str(report["reason"])

    async with client.app[DB].write() as conn:
        await conn.execute(delete(audit_log))
    await _record(client, 3)
    async with client.app[DB].write() as conn:  # a forged entry with a well-formed own hash
        last = (await conn.execute(select(audit_log).where(audit_log.c.seq == 3))).mappings().one()
        forged = entry_object(seq=4, at=5, actor=None, action="x", subject=None, details={})
        await conn.execute(
            insert(audit_log).values(
                seq=4,
                at=5,
                actor=None,
                action="x",
                subject=None,
                details="{}",
                prev=bytes(32),
                hash=chain_hash(bytes(32), forged),
            )
        )
        assert last["hash"] != bytes(32)
    report = await _verify(client)
    assert (report["ok"], report["broken_seq"]) == (False, 4)


async def test_concurrent_appends_stay_one_chain(client: Client) -> None:
    """Many transactions append at once (PostgreSQL: real concurrency, serialised by the lock)."""
    audit, db = client.app[AUDIT], client.app[DB]

    async def one(i: int) -> None:
        async with db.write() as conn:
            await conn.execute(select(1))
            await asyncio.sleep(0)
            await audit.record(
                conn, action="test.event", actor=None, subject=None, details={"i": i}, now=i
            )

    await asyncio.gather(*(one(i) for i in range(24)))
    report = await _verify(client)
    assert (report["ok"], report["entries"]) == (True, 24)


async def test_records_refuse_what_is_not_metadata(client: Client) -> None:
    audit = client.app[AUDIT]
    async with client.app[DB].write() as conn:
        for kwargs in (
            {"action": "Login Failed"},
            {"action": "x" * 41},
            {"actor": "x" * 23},
            {"details": {"ratio": 0.5}},
            {"details": {"big": "x" * 5000}},
        ):
            args: dict[str, Any] = {"action": "ok", "actor": None, "subject": None, "details": {}}
            args.update(kwargs)
            with pytest.raises((ValueError, CryptoError)):
                await audit.record(conn, now=1, **args)


async def test_auth_events_are_recorded(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    session = await login(client, account)
    stranger = keys_from_output(random_bytes(DERIVED_BYTES))
    assert (await attempt(client, "ghost@example.org", stranger)).status == 401
    resp = await client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert resp.status == 204
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn)
        report = await client.app[AUDIT].verify(conn)
    assert report.ok
    assert [e.action for e in entries] == ["login", "login-failed", "session-revoked"]
    ok, failed, revoked = entries
    assert (ok.actor, ok.subject, ok.details["method"]) == (account.id, account.id, "pass")
    assert failed.actor is None and failed.subject is None
    hashed = Pseudonyms(client.app[SECRETS].pepper).login("ghost@example.org")
    assert failed.details == {"name": hashed, "method": "pass", "reason": "unknown-name"}
    assert "ghost" not in cj(failed.details).decode()
    assert revoked.details == {"session": ok.details["session"], "reason": "logout"}
    assert all(e.at <= client.app[CLOCK]() for e in entries)
