"""The inbox's queries use the indexes of ``schema.py`` on both databases, and the first
page of a mailbox of 100,000 messages costs at most twice the first page of one of 100.

The database is bulk-loaded directly (plain ``sqlite3`` / asyncpg ``COPY``): a big
mailbox, a small one and others whose entries interleave with them. Cost is measured
without a clock: SQLite's virtual-machine steps (a progress handler) and PostgreSQL's
buffer accesses (``EXPLAIN (ANALYZE, BUFFERS)``). SQLite runs without statistics, as a
server's database does (nothing runs ``ANALYZE``), so its plans are fixed and checked by
name; PostgreSQL plans by statistics (``ANALYZE`` here, autovacuum in production), so for
it the test checks that no plan reads a whole table and that costs stay flat.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.inbox import store
from postbox.mailbox.inbox.store import Filter

BIG = 100_000
SMALL = 100
OTHERS, OTHER_SIZE = 20, 1_000
ORG = "O" * 22
SENDER = "A" * 22
BIG_BOX, SMALL_BOX = "B" * 22, "S" * 22
THREAD = "T" * 22
LIMIT = 51  # a page of 50, plus one to know whether there is more
FOLDERS = ("inbox", "inbox", "sent", "archive", "trash")

MESSAGE_COLUMNS = (
    "pk", "id", "from_id", "signer_id", "org_id", "kind", "thread_id", "case_id",
    "created", "accepted", "digest", "wire", "receipt", "size",
)  # fmt: skip
ENTRY_COLUMNS = (
    "pk", "mailbox_id", "message_pk", "folder", "kind", "thread_id", "case_id",
    "accepted", "read", "flagged", "moved",
)  # fmt: skip


def rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Messages and entries: the big, the small and the other mailboxes, interleaved."""
    boxes = [(BIG_BOX, BIG), (SMALL_BOX, SMALL)] + [
        (f"{k:022d}", OTHER_SIZE) for k in range(OTHERS)
    ]
    plan = [(mailbox, i) for mailbox, n in boxes for i in range(n)]
    plan.sort(key=lambda x: (x[1], x[0]))  # round robin: every mailbox grows together
    messages, entries = [], []
    for pk, (mailbox, i) in enumerate(plan, start=1):
        thread = THREAD if i % 7 == 0 else None
        messages.append(
            (pk, f"{pk:022d}", SENDER, SENDER, ORG, "message", thread, None, pk, pk,
             b"d" * 64, b"{}", "{}", 100)
        )  # fmt: skip
        entries.append(
            (pk, mailbox, pk, FOLDERS[i % 5], "message", thread, None, pk,
             None if i % 50 == 0 else pk, i % 97 == 0, pk if i % 5 == 4 else None)
        )  # fmt: skip
    return messages, entries


async def load(db: Database, url: str) -> None:
    await upgrade(db)
    messages, entries = rows()
    org = (ORG, "{}", "x", False, 0)
    account = (SENDER, "citizen", ORG, "active", False, "de", 0)
    if db.is_sqlite:
        conn = sqlite3.connect(url.split(":///", 1)[1])
        with conn:
            conn.execute(
                "INSERT INTO organisations (id, names, notification_name, self_registration,"
                " created) VALUES (?, ?, ?, ?, ?)",
                org,
            )
            conn.execute(
                "INSERT INTO accounts (id, kind, org_id, status, identity_verified, language,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                account,
            )
            for table, cols, data in (
                ("messages", MESSAGE_COLUMNS, messages),
                ("mailbox_entries", ENTRY_COLUMNS, entries),
            ):
                marks = ", ".join("?" * len(cols))
                conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)
        conn.close()
        return
    pg = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await pg.copy_records_to_table(
            "organisations",
            records=[org],
            columns=["id", "names", "notification_name", "self_registration", "created"],
        )
        await pg.copy_records_to_table(
            "accounts",
            records=[account],
            columns=["id", "kind", "org_id", "status", "identity_verified", "language", "created"],
        )
        await pg.copy_records_to_table("messages", records=messages, columns=MESSAGE_COLUMNS)
        await pg.copy_records_to_table("mailbox_entries", records=entries, columns=ENTRY_COLUMNS)
        await pg.execute("VACUUM ANALYZE")  # what autovacuum does for a live server
    finally:
        await pg.close()


def _sql(conn: AsyncConnection, q: Select[Any]) -> str:
    return str(q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


async def pg_plan(conn: AsyncConnection, q: Select[Any]) -> dict[str, Any]:
    sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _sql(conn, q)
    value: Any = (await conn.execute(text(sql))).scalar_one()
    plan = json.loads(value) if isinstance(value, str) else value
    return dict(plan[0]["Plan"])


def pg_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from pg_nodes(child)


def pg_buffers(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def pg_seq_scans(plan: dict[str, Any]) -> list[str]:
    return [n["Relation Name"] for n in pg_nodes(plan) if n["Node Type"] == "Seq Scan"]


def pg_indexes(plan: dict[str, Any]) -> list[str]:
    return [n["Index Name"] for n in pg_nodes(plan) if "Index Name" in n]


async def sqlite_plan(conn: AsyncConnection, q: Select[Any]) -> str:
    result = (await conn.execute(text("EXPLAIN QUERY PLAN " + _sql(conn, q)))).all()
    return "\n".join(str(r[-1]) for r in result)


def sqlite_steps(url: str, sql: str) -> int:
    """Virtual-machine steps SQLite spends on ``sql`` (in units of 10)."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = sqlite3.connect(url.split(":///", 1)[1])
    try:
        conn.set_progress_handler(tick, 10)
        conn.execute(sql).fetchall()
    finally:
        conn.close()
    return steps


async def cost(conn: AsyncConnection, url: str, q: Select[Any]) -> int:
    if conn.dialect.name == "sqlite":
        return sqlite_steps(url, _sql(conn, q))
    return pg_buffers(await pg_plan(conn, q))


#: name, filter, the index SQLite uses (fixed plans without statistics)
LISTINGS: list[tuple[str, Filter, str]] = [
    ("folder", Filter("inbox"), "mailbox_id_folder_pk"),
    ("unread", Filter("inbox", unread=True), "(unread|mailbox_id_folder_read)"),
    ("flagged", Filter("inbox", flagged=True), "flagged"),
    ("thread", Filter(None, thread=THREAD), "mailbox_id_thread_id_pk"),
    ("case", Filter(None, case="C" * 22), "mailbox_id_case_id_pk"),
    ("read", Filter("archive", unread=False), "mailbox_id_folder_pk"),
]


async def test_plans_and_costs(db_url: str) -> None:
    db = Database(db_url, sqlite_synchronous="OFF" if db_url.startswith("sqlite") else "FULL")
    try:
        await load(db, db_url)
        async with db.write() as conn:  # retention's FOR UPDATE needs a writable transaction
            await check_listings(conn, db_url)
            await check_counts_and_collection(conn, db_url)
            await conn.rollback()
    finally:
        await db.dispose()


async def check_listings(conn: AsyncConnection, url: str) -> None:
    sqlite = conn.dialect.name == "sqlite"
    first_big = store.listing_query(BIG_BOX, Filter("inbox"), before=None, limit=LIMIT)
    first_small = store.listing_query(SMALL_BOX, Filter("inbox"), before=None, limit=LIMIT)
    big, small = await cost(conn, url, first_big), await cost(conn, url, first_small)
    # the measure: the first page of 100,000 messages vs of 100
    assert big <= 2 * small, (big, small)
    for name, f, sqlite_index in LISTINGS:
        for before in (None, BIG, BIG // 3):
            q = store.listing_query(BIG_BOX, f, before=before, limit=LIMIT)
            if sqlite:
                plan = await sqlite_plan(conn, q)
                pattern = rf"USING (COVERING )?INDEX ix_mailbox_entries_{sqlite_index}\b"
                assert re.search(pattern, plan), (name, plan)
                assert "TEMP B-TREE" not in plan, (name, plan)
                spent = sqlite_steps(url, _sql(conn, q))
            else:
                pg = await pg_plan(conn, q)
                assert not pg_seq_scans(pg), (name, pg)
                spent = pg_buffers(pg)
            # a page never costs more than a few first pages, wherever it starts
            assert spent <= 6 * big + 50, (name, before, spent, big)


async def check_counts_and_collection(conn: AsyncConnection, url: str) -> None:
    queries = {
        "unread count": (store.unread_query(BIG_BOX, "inbox"), r"unread|folder_read"),
        "retention": (store.expired_messages_query(ORG, 1_000, 500), r"messages_org_id_accepted"),
        "trash": (
            store.expired_trash_query(10**6, default_days=0, min_days=0, limit=500),
            r"ix_mailbox_entries_trash_moved",
        ),
    }
    for name, (q, index) in queries.items():
        if conn.dialect.name == "sqlite":
            plan = await sqlite_plan(conn, q)
            assert re.search(index, plan), (name, plan)
            assert not re.search(r"SCAN (mailbox_entries|messages)\b", plan), plan
        else:
            pg = await pg_plan(conn, q)
            assert any(re.search(index, i) for i in pg_indexes(pg)), (name, pg)
            assert not set(pg_seq_scans(pg)) & {"mailbox_entries", "messages"}, pg
    # Unread counts cost what the unread entries cost, not what the mailbox holds. (Totals
    # count the mailbox's entries: linear, by design; see protocol.md §13.10.)
    unread = await cost(conn, url, store.unread_query(BIG_BOX, "inbox"))
    totals = await cost(conn, url, store.totals_query(BIG_BOX))
    assert 3 * unread < totals, (unread, totals)
