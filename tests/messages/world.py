"""Two organisations onboarded over HTTP (``support.onboard``), and envelopes made for them.

Org A ("home"): admin, team T (keyed; caseworkers cw1 and cw2 are members), a connector
member, an uncertified caseworker, citizens c1 and c2 (invited by cw1).
Org B ("other"): admin, team TB (keyed; caseworker cwb), citizen cb.

Envelopes are sealed with the crypto core exactly as a client would; :func:`post` sends
the canonical bytes to ``POST /api/v1/messages``.
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
    membership,
    new_id,
    send,
    setup_org,
    wrap,
)

from postbox.crypto import certs
from postbox.crypto.attachment import blob_length
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import Kind, Sealed, seal_message
from postbox.crypto.primitives import H, random_bytes
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db import schema

MESSAGES = "/api/v1/messages"


@dataclass
class Org:
    setup: OrgSetup
    team: str
    team_key: TeamKey
    members: list[Person]
    citizens: list[Person]

    @property
    def id(self) -> str:
        return self.setup.org


@dataclass
class MsgWorld:
    client: Client
    clock: FakeClock
    home: Org
    other: Org
    connector: Person
    uncertified: Person
    #: mailbox id → its current encryption certificate (what a sender verified)
    keys: dict[str, certs.Cert] = field(default_factory=dict)

    @property
    def cw1(self) -> Person:
        return self.home.members[0]

    @property
    def cw2(self) -> Person:
        return self.home.members[1]

    @property
    def c1(self) -> Person:
        return self.home.citizens[0]

    @property
    def c2(self) -> Person:
        return self.home.citizens[1]

    @property
    def team(self) -> str:
        return self.home.team

    @property
    def cwb(self) -> Person:
        return self.other.members[0]

    @property
    def cb(self) -> Person:
        return self.other.citizens[0]

    def seal(
        self,
        sender: Person,
        to: Sequence[str],
        *,
        from_: str | None = None,
        kind: Kind = "message",
        thread: str | None = None,
        case: str | None = None,
        created: int | None = None,
        message_id: str | None = None,
        subject: str = "Antrag auf Verlängerung",
        body: str = "Sehr geehrte Damen und Herren, …",
        attachments: Sequence[Mapping[str, Any]] = (),
        blobs: Sequence[Mapping[str, Any]] = (),
        keys: Mapping[str, certs.Cert] | None = None,
        mk: bytes | None = None,
    ) -> Sealed:
        """An envelope ``sender`` signs, sealed to the current keys of ``to`` + ``from``."""
        from_id = from_ or sender.id
        content = {
            "subject": subject,
            "body": body,
            "format": "text",
            "form": None,
            "attachments": list(attachments),
            "in_reply_to": None,
            "sth": {"size": 1, "root": b64e(random_bytes(32))},
        }
        recipients = dict(self.keys)
        recipients.update(keys or {})
        return seal_message(
            content=content,
            message_id=message_id or new_id(),
            kind=kind,
            from_=from_id,
            signer=sender.id,
            signer_seed=sender.sign_seed,
            to=list(to),
            recipients=recipients,
            thread=thread,
            case=case,
            created=self.clock.now if created is None else created,
            blobs=blobs,
            mk=mk,
        )

    async def post(self, sender: Person, body: bytes, query: str = "") -> tuple[int, Any]:
        return await post(self.client, sender, body, query)

    async def counts(self) -> dict[str, int]:
        """Rows per table, every table of the schema ("nothing half-stored" means none of
        these moves)."""
        return await table_counts(self.client)

    async def add_blob(
        self,
        owner: Person,
        *,
        file_size: int = 1000,
        state: str = "complete",
        expires: int | None = None,
    ) -> dict[str, Any]:
        """A complete upload of ``owner`` (a blob row, as the blobs feature leaves it) for a
        file of ``file_size`` bytes; returns its ``header.blobs`` entry."""
        size = blob_length(file_size)
        blob_id = new_id()
        digest = H(random_bytes(32), 32)
        now = self.clock.now
        async with self.client.app[DB].write() as conn:
            await conn.execute(
                schema.blobs.insert().values(
                    id=blob_id,
                    owner_id=owner.id,
                    state=state,
                    size=size,
                    received=size if state == "complete" else 0,
                    hash=digest if state == "complete" else None,
                    created=now,
                    completed=now if state == "complete" else None,
                    expires=now + 24 * 3600 * 1000 if expires is None else expires,
                )
            )
        return {"id": blob_id, "size": size, "hash": b64e(digest)}


def attachment_for(
    blob: Mapping[str, Any], file_size: int = 1000, name: str = "pass.pdf"
) -> dict[str, Any]:
    """The manifest entry of a blob made by :meth:`MsgWorld.add_blob` for ``file_size``."""
    return {
        "blob": blob["id"],
        "name": name,
        "type": "application/pdf",
        "size": file_size,
        "key": b64e(random_bytes(32)),
    }


async def table_counts(client: Client) -> dict[str, int]:
    async with client.app[DB].read() as conn:
        return {
            t.name: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in schema.metadata.sorted_tables
        }


async def post(client: Client, sender: Person, body: bytes, query: str = "") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **sender.headers}
    resp = await client.post(MESSAGES + query, data=body, headers=headers)
    payload = await resp.json() if resp.content_type.endswith("json") else await resp.read()
    return resp.status, payload


async def _org(client: Client, clock: FakeClock, *, citizens: int) -> Org:
    setup = await setup_org(client, clock.now)
    team = await create_team(client, setup)
    cw1 = await add_staff(client, setup, "caseworker", clock.now)
    key = await init_team(client, setup, team, cw1, clock.now)
    members = [cw1]
    people = [await add_citizen(client, cw1, clock.now) for _ in range(citizens)]
    return Org(setup, team, key, members, people)


async def add_member(client: Client, org: Org, person: Person, now: int) -> None:
    status, body = await send(
        client,
        "POST",
        f"/api/v1/teams/{org.team}/members",
        {
            "member": person.id,
            "membership": membership(org.team, person, org.setup.admin, now),
            "wrap": wrap(org.team_key, person, org.members[0]),
        },
        who=org.members[0],
    )
    assert status == 201, body
    org.members.append(person)


async def build_world(client: Client, clock: FakeClock) -> MsgWorld:
    home = await _org(client, clock, citizens=2)
    cw2 = await add_staff(client, home.setup, "caseworker", clock.now)
    await add_member(client, home, cw2, clock.now)
    connector = await add_staff(client, home.setup, "connector", clock.now)
    await add_member(client, home, connector, clock.now)
    home.members.remove(connector)
    uncertified = await add_staff(client, home.setup, "caseworker", clock.now, certified=False)
    other = await _org(client, clock, citizens=1)
    world = MsgWorld(client, clock, home, other, connector, uncertified)
    for org in (home, other):
        world.keys[org.team] = org.team_key.cert
        for p in (*org.members, *org.citizens, org.setup.admin):
            world.keys[p.id] = p.enc_cert
    world.keys[connector.id] = connector.enc_cert
    world.keys[uncertified.id] = uncertified.enc_cert
    return world
