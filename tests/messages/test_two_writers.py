"""Two server instances on one database, each with its own group-commit writer: the unique
``(from, id)`` and the blob link stay the final arbiters when the same envelope, or two
envelopes with the same blob, race through both."""

from __future__ import annotations

import asyncio

from messages.world import MsgWorld, attachment_for, post
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select
from support.onboard import Client, FakeClock

from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db import schema
from postbox.mailbox.settings import Settings


async def second_server(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock
) -> Client:
    """Another server process on the same database and data folder (same secrets)."""
    return await aiohttp_client(create_app(settings, clock=clock))


async def count(w: MsgWorld, table: object) -> int:
    async with w.client.app[DB].read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_the_same_envelope_through_two_servers(
    msg_world: MsgWorld, aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock
) -> None:
    w = msg_world
    other = await second_server(aiohttp_client, settings, clock)
    for _ in range(5):
        sealed = w.seal(w.c1, [w.team])
        a, b = await asyncio.gather(
            post(w.client, w.c1, sealed.body), post(other, w.c1, sealed.body)
        )
        assert sorted([a[0], b[0]]) == [200, 201]
        assert a[1] == b[1]  # the same receipt
    assert await count(w, schema.messages) == 5


async def test_one_blob_in_two_envelopes_through_two_servers(
    msg_world: MsgWorld, aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock
) -> None:
    w = msg_world
    other = await second_server(aiohttp_client, settings, clock)
    for _ in range(5):
        blob = await w.add_blob(w.c1)
        one, two = (
            w.seal(w.c1, [w.team], blobs=[blob], attachments=[attachment_for(blob)])
            for _ in range(2)
        )
        a, b = await asyncio.gather(post(w.client, w.c1, one.body), post(other, w.c1, two.body))
        codes = sorted((a[0], b[0]))
        assert codes == [201, 400], (a, b)
        refused = a[1] if a[0] == 400 else b[1]
        assert refused["type"].endswith(":blob-unavailable")
    assert await count(w, schema.messages) == 5
    assert await count(w, schema.message_blobs) == 5
