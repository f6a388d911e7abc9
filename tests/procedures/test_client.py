"""The client library's procedures and cases over real HTTP (live server, both databases).

Procedures are verified against the org's admin keys from the transparency log before the
client returns them; a server that serves anything else is caught (a tampering middleware
plays the compromised server).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from support.client import Tampering, live_server
from support.mailworld import MailWorld, onboard_mail_world

from postbox.client.errors import (
    ForbiddenError,
    NotFoundError,
    ProtocolViolation,
    UsageError,
    VerificationFailed,
)
from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.crypto.procedures import Procedure, form_digest, sign_procedure
from postbox.mailbox.appkeys import DB
from postbox.mailbox.cases.effects import SendFacts, apply_send
from postbox.mailbox.events import store as event_store

NOW = 1_767_225_600_000


def new_id() -> str:
    return b64e(random_bytes(16))


def procedure(org: str, pid: str, version: int = 1) -> Procedure:
    return {
        "v": 1,
        "org": org,
        "id": pid,
        "version": version,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "labels": {"de": {"title": "Einbürgerung"}, "en": {"title": "Naturalisation"}},
        "documents": [],
    }


async def test_procedures_are_verified_before_use(db_url: str, tmp_path: Path) -> None:
    tampering = Tampering()
    async with (
        live_server(db_url, tmp_path / "var", tampering=tampering) as live,
        onboard_mail_world(live, tmp_path) as w,
    ):
        pid = new_id()
        v1 = procedure(w.org, pid)
        published = await w.admin.client.procedures.publish(w.admin.keyring, v1)
        assert (published.id, published.version) == (pid, 1)
        assert published.digest == b64e(form_digest(v1))
        v2 = procedure(w.org, pid, 2)
        await w.admin.client.procedures.publish(w.admin.keyring, v2)

        citizen = w.citizen.client.procedures
        [latest] = await citizen.list(w.org)
        assert latest.procedure == v2 and latest.digest == form_digest(v2)
        assert latest.label("title") == "Einbürgerung"
        assert latest.label("title", ("en",)) == "Naturalisation"
        first = await citizen.fetch(w.org, pid, 1)
        assert first.procedure == v1 and first.by == w.admin.keyring.identity.kid

        # a server that changes a label, forges a signature, swaps the signer for a
        # caseworker's key, or answers another version than asked for: refused
        def relabel(path: str, body: Any) -> Any:
            if "/procedures" not in path:
                return body
            body = copy.deepcopy(body)
            target = body["procedures"][0] if "procedures" in body else body
            target["procedure"]["labels"]["de"]["title"] = "Ausweisung"
            return body

        tampering.fn = relabel
        with pytest.raises(VerificationFailed):
            await citizen.list(w.org)
        with pytest.raises(VerificationFailed):
            await citizen.fetch(w.org, pid, 1)

        staff_signed = sign_procedure(procedure(w.org, pid, 3), w.caseworker.keyring.identity.seed)
        tampering.fn = lambda path, body: (
            {"procedures": [staff_signed]} if "/procedures" in path else body
        )
        with pytest.raises(VerificationFailed):
            await citizen.list(w.org)

        signed_v2 = sign_procedure(v2, w.admin.keyring.identity.seed)
        tampering.fn = lambda path, body: signed_v2 if "/procedures" in path else body
        with pytest.raises(ProtocolViolation):
            await citizen.fetch(w.org, pid, 1)
        tampering.fn = None
        assert (await citizen.fetch(w.org, pid, 2)).procedure == v2

        # only admins publish, and only their own organisation's procedures
        with pytest.raises(UsageError):
            await w.admin.client.procedures.publish(w.admin.keyring, procedure(new_id(), pid, 4))


async def open_case(w: MailWorld, pid: str) -> str:
    """The send path's call for a citizen's application (the messages client is separate)."""
    case = new_id()
    facts = SendFacts(
        message_pk=1,
        message_id=new_id(),
        from_id=w.citizen.account,
        signer_id=w.citizen.account,
        signer_kind="citizen",
        signer_org=None,
        kind="application",
        to=(w.team,),
        thread_id=None,
        case_id=case,
        accepted=NOW,  # 2026-01-01: the reference's year does not depend on today
        procedure=pid,
        procedure_version=1,
    )
    async with w.live.app[DB].write() as conn:
        events = await apply_send(conn, facts)
        await event_store.append(conn, events, facts.accepted)
    return case


async def test_cases_through_the_client(db_url: str, tmp_path: Path) -> None:
    async with (
        live_server(db_url, tmp_path / "var") as live,
        onboard_mail_world(live, tmp_path) as w,
    ):
        pid = new_id()
        await w.admin.client.procedures.publish(w.admin.keyring, procedure(w.org, pid))
        assert await w.admin.client.cases.pattern(w.org) == "{year}-{seq:6}"
        await w.admin.client.cases.set_pattern(w.org, "ABH-{year}-{seq:6}")
        assert await w.admin.client.cases.pattern(w.org) == "ABH-{year}-{seq:6}"
        case = await open_case(w, pid)
        mine = [c async for c in w.citizen.client.cases.list()]
        assert [c.id for c in mine] == [case]
        assert mine[0].reference == "ABH-2026-000001" and mine[0].status == "submitted"
        assert [c.id async for c in w.citizen2.client.cases.list()] == []
        team_cases = await w.caseworker.client.cases.page(mailbox=w.team, status="submitted")
        assert [c.id for c in team_cases.cases] == [case]

        shown = await w.caseworker.client.cases.show(case)
        assert shown.moves == ("in_review", "info_requested")
        assert shown.history[0].label == "signed"
        moved = await w.caseworker2.client.cases.set_status(case, "in_review")
        assert moved.status == "in_review"
        assert moved.history[-1].label == "server metadata"
        assert moved.history[-1].by == w.caseworker2.account
        assert (await w.citizen.client.cases.show(case)).status == "in_review"

        with pytest.raises(UsageError):
            await w.caseworker.client.cases.set_status(case, "decided")
        with pytest.raises(UsageError):
            await w.caseworker.client.cases.set_status(case, "archived")
        with pytest.raises(ForbiddenError) as refused:
            await w.citizen.client.cases.set_status(case, "closed")
        assert refused.value.code == "status-by-team-only"
        with pytest.raises(NotFoundError) as hidden:
            await w.citizen2.client.cases.show(case)
        assert hidden.value.code == "case-not-found"
