"""Many concurrent sends, good and bad ones in the same group-commit batch: every answer is
the one the envelope would get alone, and exactly the accepted ones are stored."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from messages.world import MsgWorld, attachment_for
from sqlalchemy import func, select, text
from support.onboard import new_id

from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.envelope import Sealed
from postbox.mailbox.appkeys import DB, MESSAGES
from postbox.mailbox.db import schema


def code(problem: Any) -> str:
    if not isinstance(problem, dict) or "type" not in problem:
        return ""
    return str(problem["type"]).rsplit(":", 1)[1]


@asynccontextmanager
async def writes_held(w: MsgWorld) -> AsyncIterator[None]:
    """Hold the database so that the send writer queues everything that arrives.

    SQLite: the one write connection is ours (BEGIN IMMEDIATE). PostgreSQL: ``messages`` is
    locked against inserts (the writer's batch reads, then waits at its first insert).
    """
    db = w.client.app[DB]
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))
        yield


async def queued(w: MsgWorld, start: int, expected: int) -> None:
    """Wait (on a condition, bounded) until ``expected`` sends reached the writer."""
    commit = w.client.app[MESSAGES].commit
    async with asyncio.timeout(30):
        # a bounded poll of the writer's counters (it has no event to wait for)
        while sum(commit.batch_sizes[start:]) + commit.queued < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def stored_count(w: MsgWorld) -> int:
    async with w.client.app[DB].read() as conn:
        q = select(func.count()).select_from(schema.messages)
        return int((await conn.execute(q)).scalar_one())


async def test_good_and_bad_sends_in_one_batch(msg_world: MsgWorld) -> None:
    w = msg_world
    team = w.team
    good: list[tuple[Any, Sealed]] = []
    for n in range(20):
        sender = w.c1 if n % 2 else w.c2
        good.append((sender, w.seal(sender, [team])))
    for _ in range(5):
        good.append((w.cw1, w.seal(w.cw1, [w.c1.id], from_=team)))
    dup = w.seal(w.c1, [team])
    same_id = new_id()
    reused = [w.seal(w.c1, [team], message_id=same_id, body=b) for b in ("eins", "zwei")]
    blob = await w.add_blob(w.c1)
    sharing = [
        w.seal(w.c1, [team], blobs=[blob], attachments=[attachment_for(blob)]) for _ in range(2)
    ]
    thread = new_id()
    racing = [(p, w.seal(p, [team], thread=thread)) for p in (w.c1, w.c2)]
    not_allowed = w.seal(w.c1, [w.c2.id])
    skewed = w.seal(w.c1, [team], created=w.clock.now - 10 * 60 * 1000)
    no_case = w.seal(w.c1, [team], kind="application")
    forged: Any = copy.deepcopy(w.seal(w.c1, [team]).wire)
    sig = bytearray(b64d(forged["signature"], 64))
    sig[0] ^= 1
    forged["signature"] = b64e(bytes(sig))

    sends: list[tuple[str, Any, bytes]] = [("good", p, s.body) for p, s in good]
    sends += [("dup", w.c1, dup.body)] * 2
    sends += [("reused", w.c1, s.body) for s in reused]
    sends += [("blob", w.c1, s.body) for s in sharing]
    sends += [("thread", p, s.body) for p, s in racing]
    sends += [
        ("not-allowed", w.c1, not_allowed.body),
        ("skewed", w.c1, skewed.body),
        ("no-case", w.c1, no_case.body),
        ("forged", w.c1, cj(forged)),  # refused before it is queued
    ]
    commit = w.client.app[MESSAGES].commit
    start = len(commit.batch_sizes)
    async with writes_held(w):
        tasks = [asyncio.create_task(w.post(p, body)) for _, p, body in sends]
        await queued(w, start, len(sends) - 1)
    answers = await asyncio.gather(*tasks)
    assert max(commit.batch_sizes[start:]) > 10  # they really shared batches

    by: dict[str, list[tuple[int, str]]] = {}
    for (label, _, _), (status, body) in zip(sends, answers, strict=True):
        by.setdefault(label, []).append((status, code(body)))
    assert by["good"] == [(201, "")] * len(good)
    assert sorted(by["dup"]) == [(200, ""), (201, "")]
    assert sorted(by["reused"]) == [(201, ""), (409, "message-id-reused")]
    assert sorted(by["blob"]) == [(201, ""), (400, "blob-unavailable")]
    assert sorted(by["thread"]) == [(201, ""), (404, "thread-not-found")]
    assert by["not-allowed"] == [(404, "unknown-recipient")]
    assert by["skewed"] == [(400, "clock-skew")]
    assert by["no-case"] == [(400, "case-required")]
    assert by["forged"] == [(400, "invalid-signature")]
    # the two copies of one envelope got the same receipt
    dup_receipts = [a[1] for (label, _, _), a in zip(sends, answers, strict=True) if label == "dup"]
    assert dup_receipts[0] == dup_receipts[1]

    accepted = sum(1 for status, _ in answers if status == 201)
    assert await stored_count(w) == accepted
    async with w.client.app[DB].read() as conn:
        entries = (
            await conn.execute(select(func.count()).select_from(schema.mailbox_entries))
        ).scalar_one()
        links = (
            await conn.execute(select(func.count()).select_from(schema.message_blobs))
        ).scalar_one()
    assert entries == 2 * accepted and links == 1


async def test_many_concurrent_senders(msg_world: MsgWorld) -> None:
    w = msg_world
    people = [w.c1, w.c2, w.cb]
    sealed = [(p, w.seal(p, [w.team])) for p in people for _ in range(15)]
    sealed += [(w.cw2, w.seal(w.cw2, [w.c1.id, w.c2.id], from_=w.team)) for _ in range(10)]
    answers = await asyncio.gather(*(w.post(p, s.body) for p, s in sealed))
    assert [status for status, _ in answers] == [201] * len(sealed)
    assert await stored_count(w) == len(sealed)
    # every receipt names its own envelope
    for (_, s), (_, body) in zip(sealed, answers, strict=True):
        assert body["receipt"]["message"] == s.wire["header"]["id"]
