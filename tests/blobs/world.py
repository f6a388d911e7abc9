"""The blobs tests' world: a real server on loopback, small parts, a clock, helpers.

Every test runs against the whole app (``create_app``) through real HTTP. People are
onboarded through the API (``support.onboard``): an organisation with its admin, a team
with one caseworker, and two citizens. The server's origin is the test server's own URL,
so the client library (``postbox.client``) can talk to it as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multidict import CIMultiDict
from sqlalchemy import insert, select
from support.onboard import (
    Client,
    FakeClock,
    OrgSetup,
    Person,
    new_id,
)

from postbox.client import Client as PostboxClient
from postbox.client.session import Session
from postbox.client.state import StateStore, Tokens
from postbox.crypto.attachment_stream import encrypt_bytes
from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import DB
from postbox.mailbox.blobs.storage import part_checksum
from postbox.mailbox.db.schema import blobs, mailbox_entries, message_blobs, messages
from postbox.mailbox.settings import Settings

#: parts of 64 KiB, so that small test blobs have several parts
PART: int = 64 * 1024
QUOTA: int = 4 * 1024 * 1024
EXPIRY_S: int = 3600


@dataclasses.dataclass
class BlobWorld:
    client: Client
    clock: FakeClock
    settings: Settings
    setup: OrgSetup
    owner: Person  # a citizen who uploads
    other: Person  # another citizen
    caseworker: Person  # a member of `team`
    team: str
    tmp: Path

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def call(
        self, method: str, path: str, who: Person, *, json: Any = None, **kw: Any
    ) -> tuple[int, Any, CIMultiDict[str]]:
        headers = dict(who.headers)
        headers.update(kw.pop("headers", {}))
        resp = await self.client.request(method, path, json=json, headers=headers, **kw)
        body = await resp.read()
        parsed = None
        if resp.content_type.endswith("json") and body:
            parsed = await resp.json()
        elif body:
            parsed = body
        return resp.status, parsed, CIMultiDict(resp.headers)

    async def create(self, who: Person, size: int, blob: str | None = None) -> dict[str, Any]:
        blob = blob or new_id()
        status, body, _ = await self.call(
            "POST", "/api/v1/uploads", who, json={"blob": blob, "size": size}
        )
        assert status == 201, body
        assert isinstance(body, dict)
        return body

    async def put(
        self,
        who: Person,
        blob: str,
        n: int,
        data: bytes,
        *,
        checksum: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        h = {
            "Content-Type": "application/octet-stream",
            "X-Checksum": b64e(part_checksum(data) if checksum is None else checksum),
        }
        h.update(headers or {})
        status, body, _ = await self.call(
            "PUT", f"/api/v1/uploads/{blob}/parts/{n}", who, data=data, headers=h
        )
        return status, body

    async def upload(self, who: Person, blob_bytes: bytes, blob: str | None = None) -> str:
        """A whole upload, part by part, completed; returns the blob id."""
        state = await self.create(who, len(blob_bytes), blob)
        blob = state["blob"]
        for n, part in enumerate(parts_of(blob_bytes, state["part_bytes"])):
            status, body = await self.put(who, blob, n, part)
            assert status == 201, body
        status, body, _ = await self.call("POST", f"/api/v1/uploads/{blob}/complete", who)
        assert status == 200, body
        return str(blob)

    async def link(self, blob: str, mailbox: str, sender: Person | None = None) -> int:
        """A stored message referencing ``blob``, held by ``mailbox`` (rows written
        directly, as the send path writes them)."""
        sender = sender or self.owner
        now = self.clock()
        async with self.client.app[DB].write() as conn:
            result = await conn.execute(
                insert(messages).values(
                    id=new_id(),
                    from_id=sender.id,
                    signer_id=sender.id,
                    org_id=self.setup.org,
                    kind="message",
                    thread_id=None,
                    case_id=None,
                    created=now,
                    accepted=now,
                    digest=random_bytes(64),
                    wire=b"{}",
                    receipt="{}",
                    size=0,
                )
            )
            assert result.inserted_primary_key is not None
            pk = result.inserted_primary_key[0]
            await conn.execute(
                insert(message_blobs).values(blob_id=blob, message_pk=pk, position=0)
            )
            await conn.execute(blobs.update().where(blobs.c.id == blob).values(expires=None))
            for box, folder in ((sender.id, "sent"), (mailbox, "inbox")):
                await conn.execute(
                    insert(mailbox_entries).values(
                        mailbox_id=box,
                        message_pk=pk,
                        folder=folder,
                        kind="message",
                        thread_id=None,
                        case_id=None,
                        accepted=now,
                        read=None,
                        flagged=False,
                        moved=None,
                    )
                )
        return int(pk)

    async def blob_row(self, blob: str) -> Any:
        async with self.client.app[DB].read() as conn:
            return (await conn.execute(select(blobs).where(blobs.c.id == blob))).first()

    def state_dir(self, who: Person) -> Path:
        return self.tmp / f"state-{who.id[:8]}"

    def session(self, who: Person) -> Session:
        """A client-library session logged in as ``who`` (its access token)."""
        session = Session(self.url, store=StateStore(self.state_dir(who)), login=who.login)
        _log_in(session, who)
        return session

    def client_for(self, who: Person) -> PostboxClient:
        """A :class:`postbox.client.Client` logged in as ``who`` (its access token)."""
        client = PostboxClient(self.url, state_dir=self.state_dir(who), login=who.login)
        _log_in(client.session, who)
        return client


def _log_in(session: Session, who: Person) -> None:
    assert who.token is not None
    session.state.account = who.id
    session.state.tokens = Tokens(
        access=who.token, refresh="unused", expires=session.clock() + 10 * 60_000
    )


def parts_of(data: bytes, part_bytes: int) -> Iterator[bytes]:
    for start in range(0, len(data), part_bytes):
        yield data[start : start + part_bytes]


def blob_of(file_bytes: int) -> bytes:
    """A real attachment blob of a random file of ``file_bytes`` bytes."""
    return encrypt_bytes(random_bytes(file_bytes)).blob
