"""A world for case tests, onboarded through the real server (both databases).

Organisation A with its admin, team ``team`` (caseworker ``cw``, connector ``conn``) and
team ``team2`` (caseworker ``cw_other``), two citizens, a published procedure; organisation
B with a team and a caseworker. :func:`apply` runs the send path's effects call
(:func:`postbox.mailbox.cases.effects.apply_send`) in a real write transaction, appending
its events exactly as the send path does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from support.onboard import (
    NOW,
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

from postbox.crypto.procedures import Procedure, SignedProcedure, sign_procedure
from postbox.mailbox.appkeys import DB
from postbox.mailbox.cases.effects import SendFacts, apply_send
from postbox.mailbox.events import store as event_store
from postbox.mailbox.events.store import NewEvent


def procedure(org: str, pid: str, version: int = 1) -> Procedure:
    return {
        "v": 1,
        "org": org,
        "id": pid,
        "version": version,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 200}},
            "required": ["name"],
        },
        "labels": {
            "de": {"title": "Aufenthaltstitel verlängern"},
            "en": {"title": "Extend a residence permit"},
            "tr": {"title": "Oturma iznini uzatma"},
        },
        "documents": [{"name": "passport", "required": True, "max_size": 10_000_000}],
    }


async def publish(
    client: Client, setup: OrgSetup, p: Procedure, *, signer: Person | None = None
) -> SignedProcedure:
    signed = sign_procedure(p, (signer or setup.admin).sign_seed)
    status, body = await send(
        client, "POST", f"/api/v1/orgs/{setup.org}/procedures", signed, who=setup.admin
    )
    assert status == 201, body
    return signed


@dataclass
class CaseWorld:
    client: Client
    clock: FakeClock
    a: OrgSetup
    team: str
    cw: Person
    connector: Person
    team2: str
    cw_other: Person
    citizen: Person
    citizen2: Person
    procedure: str
    b: OrgSetup
    b_team: str
    b_cw: Person
    #: the teams' keys (certificates to seal to) and the published procedure object
    keys: dict[str, TeamKey]
    procedure_object: Procedure

    def facts(self, **kw: Any) -> SendFacts:
        """Facts of a citizen's application to ``team`` opening a new case (override any)."""
        base = SendFacts(
            message_pk=1,
            message_id=new_id(),
            from_id=self.citizen.id,
            signer_id=self.citizen.id,
            signer_kind="citizen",
            signer_org=None,
            kind="application",
            to=(self.team,),
            thread_id=new_id(),
            case_id=new_id(),
            accepted=self.clock.now,
            procedure=self.procedure,
            procedure_version=1,
        )
        return replace(base, **kw)

    def from_team(self, case_id: str, kind: str, who: Person | None = None, **kw: Any) -> SendFacts:
        """Facts of a message from ``team`` (written by ``who``, default ``cw``) in a case."""
        p = who or self.cw
        base: dict[str, Any] = {
            "from_id": self.team,
            "signer_id": p.id,
            "signer_kind": p.kind,
            "signer_org": p.org,
            "to": (self.citizen.id,),
        }
        return self.facts(
            **{**base, "procedure": None, "procedure_version": None, **kw},
            kind=kind,
            case_id=case_id,
        )

    def from_citizen(self, case_id: str, kind: str, **kw: Any) -> SendFacts:
        return self.facts(
            **{"procedure": None, "procedure_version": None, **kw}, kind=kind, case_id=case_id
        )


async def apply(client: Client, facts: SendFacts) -> list[NewEvent]:
    """:func:`apply_send` in one real write transaction (events appended as the send path
    does); a refusal rolls everything back."""
    async with client.app[DB].write() as conn:
        events = await apply_send(conn, facts)
        await event_store.append(conn, events, facts.accepted)
    return events


async def open_case(w: CaseWorld, **kw: Any) -> str:
    facts = w.facts(**kw)
    await apply(w.client, facts)
    assert facts.case_id is not None
    return facts.case_id


async def build_world(client: Client, clock: FakeClock) -> CaseWorld:
    a = await setup_org(client, NOW)
    cw = await add_staff(client, a, "caseworker", NOW)
    team = await create_team(client, a)
    key = await init_team(client, a, team, cw, NOW)
    connector = await add_staff(client, a, "connector", NOW)
    await _add_member(client, a, team, key, cw, connector)
    cw_other = await add_staff(client, a, "caseworker", NOW)
    team2 = await create_team(client, a)
    key2 = await init_team(client, a, team2, cw_other, NOW)
    citizen = await add_citizen(client, cw, NOW)
    citizen2 = await add_citizen(client, cw, NOW)
    pid = new_id()
    proc = procedure(a.org, pid)
    await publish(client, a, proc)
    b = await setup_org(client, NOW)
    b_cw = await add_staff(client, b, "caseworker", NOW)
    b_team = await create_team(client, b)
    b_key = await init_team(client, b, b_team, b_cw, NOW)
    return CaseWorld(
        client,
        clock,
        a,
        team,
        cw,
        connector,
        team2,
        cw_other,
        citizen,
        citizen2,
        pid,
        b,
        b_team,
        b_cw,
        {team: key, team2: key2, b_team: b_key},
        proc,
    )


async def _add_member(
    client: Client, setup: OrgSetup, team: str, key: Any, by: Person, new: Person
) -> None:
    status, body = await send(
        client,
        "POST",
        f"/api/v1/teams/{team}/members",
        {
            "member": new.id,
            "membership": membership(team, new, setup.admin, NOW),
            "wrap": wrap(key, new, by),
        },
        who=by,
    )
    assert status == 201, body
