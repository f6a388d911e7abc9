"""An organisation onboarded over HTTP (``support.onboard``) with real mail in it.

Org "home": admin, team T (caseworkers cw1 and cw2 are members), citizens c1 and c2
(invited by cw1). Org "other" (made on demand): its admin and one citizen. Envelopes are
sealed with the crypto core exactly as a client seals them and sent through the real
``POST /api/v1/messages``; attachments are encrypted and uploaded through the real upload
routes, so every row the inbox reads was written by the features that own it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from support.onboard import (
    Client,
    FakeClock,
    OrgSetup,
    Person,
    TeamKey,
    add_citizen,
    add_staff,
    create_team,
    init_team,
    login,
    membership,
    new_id,
    send,
    setup_org,
    wrap,
)

from postbox.crypto import certs
from postbox.crypto.attachment_stream import EncryptedBlob, encrypt_bytes
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import Kind, Sealed, seal_message
from postbox.crypto.primitives import H, random_bytes
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db import schema

MESSAGES = "/api/v1/messages"


def box(mailbox: str) -> str:
    return f"/api/v1/mailboxes/{mailbox}/messages"


def ref(mailbox: str, sealed: Sealed) -> str:
    h = sealed.wire["header"]
    return f"{box(mailbox)}/{h['from']}/{h['id']}"


@dataclass
class Attached:
    """An uploaded attachment: its header entry, manifest entry and plaintext."""

    header: dict[str, Any]
    manifest: dict[str, Any]
    plaintext: bytes
    encrypted: EncryptedBlob


@dataclass
class InboxWorld:
    client: Client
    clock: FakeClock
    setup: OrgSetup
    team: str
    team_key: TeamKey
    cw1: Person
    cw2: Person
    c1: Person
    c2: Person
    #: mailbox id → its current encryption certificate (what a sender verified)
    keys: dict[str, certs.Cert] = field(default_factory=dict)

    @property
    def org(self) -> str:
        return self.setup.org

    @property
    def admin(self) -> Person:
        return self.setup.admin

    def seal(
        self,
        sender: Person,
        to: Sequence[str],
        *,
        from_: str | None = None,
        kind: Kind = "message",
        thread: str | None = None,
        case: str | None = None,
        attachments: Sequence[Attached] = (),
        subject: str = "Antrag auf Verlängerung",
    ) -> Sealed:
        content = {
            "subject": subject,
            "body": "Sehr geehrte Damen und Herren, …",
            "format": "text",
            "form": None,
            "attachments": [a.manifest for a in attachments],
            "in_reply_to": None,
            "sth": {"size": 1, "root": b64e(random_bytes(32))},
        }
        return seal_message(
            content=content,
            message_id=new_id(),
            kind=kind,
            from_=from_ or sender.id,
            signer=sender.id,
            signer_seed=sender.sign_seed,
            to=list(to),
            recipients=self.keys,
            thread=thread,
            case=case,
            created=self.clock.now,
            blobs=[a.header for a in attachments],
        )

    async def post(self, sender: Person, sealed: Sealed) -> Any:
        headers = {"Content-Type": "application/json", **sender.headers}
        resp = await self.client.post(MESSAGES, data=sealed.body, headers=headers)
        payload = await resp.json()
        assert resp.status == 201, payload
        return payload

    async def citizen_writes(self, citizen: Person, **kw: Any) -> Sealed:
        """A citizen writes to the team."""
        sealed = self.seal(citizen, [self.team], **kw)
        await self.post(citizen, sealed)
        return sealed

    async def team_writes(self, to: Person, *, by: Person | None = None, **kw: Any) -> Sealed:
        """A caseworker writes for the team to a citizen."""
        writer = by or self.cw1
        sealed = self.seal(writer, [to.id], from_=self.team, **kw)
        await self.post(writer, sealed)
        return sealed

    async def upload(self, owner: Person, data: bytes, name: str = "pass.pdf") -> Attached:
        """Encrypt and upload a file through the upload routes (one part)."""
        enc = encrypt_bytes(data)
        blob = new_id()
        status, body = await send(
            self.client, "POST", "/api/v1/uploads", {"blob": blob, "size": len(enc.blob)}, who=owner
        )
        assert status == 201, body
        resp = await self.client.put(
            f"/api/v1/uploads/{blob}/parts/0",
            data=enc.blob,
            headers={
                **owner.headers,
                "Content-Type": "application/octet-stream",
                "X-Checksum": b64e(H(enc.blob, 32)),
            },
        )
        assert resp.status in (200, 201), await resp.text()
        status, body = await send(
            self.client, "POST", f"/api/v1/uploads/{blob}/complete", None, who=owner
        )
        assert status == 200, body
        return Attached(
            {"id": blob, "size": len(enc.blob), "hash": b64e(enc.hash)},
            {
                "blob": blob,
                "name": name,
                "type": "application/pdf",
                "size": len(data),
                "key": b64e(enc.key),
            },
            data,
            enc,
        )

    async def advance(self, ms: int) -> None:
        """Move the clock and log everyone in again (access tokens live 15 minutes)."""
        self.clock.advance(ms)
        if ms > 60_000:
            for p in (self.admin, self.cw1, self.cw2, self.c1, self.c2):
                await login(self.client, p)

    async def get(
        self, who: Person, path: str, params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        resp = await self.client.get(path, params=params, headers=who.headers)
        payload = await resp.json() if resp.content_type.endswith("json") else None
        return resp.status, payload

    async def rows(self, table: Any) -> int:
        async with self.client.app[DB].read() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

    async def blob_rows(self, ids: Sequence[str]) -> int:
        async with self.client.app[DB].read() as conn:
            q = select(func.count()).select_from(schema.blobs).where(schema.blobs.c.id.in_(ids))
            return int((await conn.execute(q)).scalar_one())


async def add_member(world: InboxWorld, person: Person) -> None:
    status, body = await send(
        world.client,
        "POST",
        f"/api/v1/teams/{world.team}/members",
        {
            "member": person.id,
            "membership": membership(world.team, person, world.admin, world.clock.now),
            "wrap": wrap(world.team_key, person, world.cw1),
        },
        who=world.cw1,
    )
    assert status == 201, body


async def remove_member(world: InboxWorld, person: Person) -> None:
    world.clock.advance(1)  # memberships of one member need increasing times
    status, body = await send(
        world.client,
        "DELETE",
        f"/api/v1/teams/{world.team}/members/{person.id}",
        {"membership": membership(world.team, person, world.admin, world.clock.now)},
        who=world.admin,
    )
    assert status == 200, body


async def build_world(client: Client, clock: FakeClock) -> InboxWorld:
    setup = await setup_org(client, clock.now)
    team = await create_team(client, setup)
    cw1 = await add_staff(client, setup, "caseworker", clock.now)
    key = await init_team(client, setup, team, cw1, clock.now)
    cw2 = await add_staff(client, setup, "caseworker", clock.now)
    c1 = await add_citizen(client, cw1, clock.now)
    c2 = await add_citizen(client, cw1, clock.now)
    world = InboxWorld(client, clock, setup, team, key, cw1, cw2, c1, c2)
    await add_member(world, cw2)
    world.keys[team] = key.cert
    for p in (cw1, cw2, c1, c2):
        world.keys[p.id] = p.enc_cert
    return world


async def other_citizen(world: InboxWorld) -> Person:
    """A citizen of another organisation."""
    setup = await setup_org(world.client, world.clock.now)
    team = await create_team(world.client, setup)
    cw = await add_staff(world.client, setup, "caseworker", world.clock.now)
    await init_team(world.client, setup, team, cw, world.clock.now)
    return await add_citizen(world.client, cw, world.clock.now)
