"""A migrated database with an organisation, a team of two caseworkers and two citizens,
rows inserted by SQL; messages are inserted the way the send path stores them, so the
delivery hooks can be exercised directly, in their callers' transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import insert

from postbox.crypto.encoding import b64e, cj
from postbox.crypto.primitives import random_bytes, sign_keypair
from postbox.crypto.receipts import make_receipt, sign_receipt
from postbox.mailbox.clock import system_clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.db.schema import (
    accounts,
    mailbox_entries,
    messages,
    organisations,
    team_members,
    teams,
)

RECEIPT_SEED = bytes(range(32))
RECEIPT_PK = sign_keypair(RECEIPT_SEED)[0]


def new_id() -> str:
    return b64e(random_bytes(16))


@dataclass
class DbWorld:
    db: Database
    org: str
    team: str
    caseworkers: tuple[str, str]
    citizens: tuple[str, str]

    async def message(
        self,
        *,
        from_id: str,
        signer: str,
        to: Sequence[str],
        kind: str = "decision",
        accepted: int,
    ) -> tuple[int, str, bytes]:
        """Insert a message row and its mailbox entries; returns (pk, id, digest)."""
        return await insert_message(
            self.db,
            org=self.org,
            from_id=from_id,
            signer=signer,
            to=to,
            kind=kind,
            accepted=accepted,
        )


async def insert_message(
    db: Database,
    *,
    org: str | None,
    from_id: str,
    signer: str,
    to: Sequence[str],
    kind: str = "decision",
    accepted: int,
    receipt_seed: bytes = RECEIPT_SEED,
) -> tuple[int, str, bytes]:
    """A message row and its mailbox entries as the send path stores them (the envelope
    itself is a placeholder: the delivery feature never reads it); (pk, id, digest)."""
    message_id = new_id()
    digest = random_bytes(64)
    receipt = sign_receipt(
        make_receipt(message=message_id, from_=from_id, digest=digest, accepted=accepted),
        receipt_seed,
    )
    async with db.write() as conn:
        result = await conn.execute(
            insert(messages).values(
                id=message_id,
                from_id=from_id,
                signer_id=signer,
                org_id=org,
                kind=kind,
                thread_id=None,
                case_id=None,
                created=accepted,
                accepted=accepted,
                digest=digest,
                wire=b"{}",
                receipt=cj(receipt).decode(),
                size=2,
            )
        )
        pk = int(result.inserted_primary_key[0])  # type: ignore[index]
        for box in sorted({*to, from_id}):
            await conn.execute(
                insert(mailbox_entries).values(
                    mailbox_id=box,
                    message_pk=pk,
                    folder="sent" if box == from_id else "inbox",
                    kind=kind,
                    accepted=accepted,
                    flagged=False,
                )
            )
    return pk, message_id, digest


@asynccontextmanager
async def db_world(db_url: str, now: int) -> AsyncIterator[DbWorld]:
    db = Database(db_url, sqlite_synchronous="OFF")
    try:
        await upgrade(db)
        org, team = new_id(), new_id()
        cws = (new_id(), new_id())
        cits = (new_id(), new_id())
        async with db.write() as conn:
            await conn.execute(
                insert(organisations).values(
                    id=org, names='{"de":"Stadt"}', notification_name="Stadt", created=now
                )
            )
            for kind, ids in (("caseworker", cws), ("citizen", cits)):
                for a in ids:
                    await conn.execute(
                        insert(accounts).values(
                            id=a,
                            kind=kind,
                            org_id=org if kind == "caseworker" else None,
                            status="active",
                            identity_verified=True,
                            language="de",
                            created=now,
                        )
                    )
            await conn.execute(
                insert(teams).values(id=team, org_id=org, names='{"de":"Team"}', created=now)
            )
            for a in cws:
                await conn.execute(
                    insert(team_members).values(team_id=team, account_id=a, added=now)
                )
        yield DbWorld(db, org, team, cws, cits)
    finally:
        await db.dispose()


class FakeClock:
    """The server's clock for live-server tests: the wall clock while the world is
    onboarded (certificates are dated by the clients' wall clocks), then frozen and moved
    only by the test."""

    def __init__(self) -> None:
        self.frozen: int | None = None

    def __call__(self) -> int:
        return system_clock() if self.frozen is None else self.frozen

    @property
    def now(self) -> int:
        return self()

    def freeze(self) -> None:
        self.frozen = system_clock()

    def advance(self, ms: int) -> None:
        assert self.frozen is not None
        self.frozen += ms
