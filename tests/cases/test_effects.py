"""What accepted envelopes do to cases (``apply_send``), against real databases.

The rows the effects read (organisations, teams, members, citizens, procedures) are made
through the real HTTP API (``conftest.build_world``); ``apply_send`` runs in a real write
transaction exactly as the send path calls it.
"""

from __future__ import annotations

from typing import Any

import pytest
from cases.world import CaseWorld, apply, open_case, procedure, publish
from sqlalchemy import event, func, select
from support.onboard import new_id

from postbox.mailbox.appkeys import DB
from postbox.mailbox.cases.effects import SEND_CODES, SEND_PROBLEMS, apply_send
from postbox.mailbox.db.schema import case_history, cases, events
from postbox.mailbox.errors import PostboxError


async def refused(w: CaseWorld, facts: Any, status: int, code: str) -> PostboxError:
    before = await counts(w)
    with pytest.raises(PostboxError) as info:
        await apply(w.client, facts)
    assert (info.value.status, info.value.code) == (status, code), info.value.detail
    assert code in SEND_PROBLEMS[status] and code in SEND_CODES
    assert await counts(w) == before  # nothing stored half
    return info.value


async def counts(w: CaseWorld) -> dict[str, int]:
    async with w.client.app[DB].read() as conn:
        return {
            t.name: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in (cases, case_history, events)
        }


async def case_row(w: CaseWorld, case_id: str) -> Any:
    async with w.client.app[DB].read() as conn:
        return (await conn.execute(select(cases).where(cases.c.id == case_id))).one()


async def history(w: CaseWorld, case_id: str) -> list[tuple[str, str, str, str | None]]:
    async with w.client.app[DB].read() as conn:
        rows = await conn.execute(
            select(
                case_history.c.status,
                case_history.c.via,
                case_history.c.by_id,
                case_history.c.message_id,
            )
            .join(cases, cases.c.pk == case_history.c.case_pk)
            .where(cases.c.id == case_id)
            .order_by(case_history.c.pk)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


# --- opening ---------------------------------------------------------------------------------
async def test_an_application_opens_a_case(case_world: CaseWorld) -> None:
    w = case_world
    facts = w.facts()
    new = await apply(w.client, facts)
    row = await case_row(w, facts.case_id or "")
    assert (row.status, row.org_id, row.team_id, row.citizen_id) == (
        "submitted",
        w.a.org,
        w.team,
        w.citizen.id,
    )
    assert (row.procedure_id, row.procedure_version) == (w.procedure, 1)
    assert row.reference == "2026-000001"  # the default pattern, 2026 in Berlin
    assert (row.opened_from, row.opened_id) == (w.citizen.id, facts.message_id)
    assert await history(w, row.id) == [
        ("submitted", "application", w.citizen.id, facts.message_id)
    ]
    # the citizen and the team's current members hear of it; nobody else
    assert sorted(e.account_id for e in new) == sorted([w.citizen.id, w.cw.id, w.connector.id])
    assert {e.type for e in new} == {"case"}
    assert new[0].data == {"case": row.id, "status": "submitted", "reference": "2026-000001"}


async def test_a_message_without_a_case_costs_no_query(case_world: CaseWorld) -> None:
    w = case_world
    statements: list[str] = []
    async with w.client.app[DB].write() as conn:

        def count(*args: Any) -> None:
            statements.append(str(args[2]))

        event.listen(conn.sync_connection, "before_cursor_execute", count)
        for kind in ("message", "decision", "info_request", "fitconnect"):
            facts = w.facts(kind=kind, case_id=None, procedure=None, procedure_version=None)
            assert await apply_send(conn, facts) == []
        event.remove(conn.sync_connection, "before_cursor_execute", count)
    assert statements == []


OPENING_REFUSALS: list[tuple[dict[str, Any], int, str]] = [
    ({"case_id": None}, 400, "case-required"),
    (
        {"kind": "withdrawal", "case_id": None, "procedure": None, "procedure_version": None},
        400,
        "case-required",
    ),
    ({"kind": "message", "case_id": None}, 400, "procedure-unexpected"),
    ({"procedure": None, "procedure_version": None}, 400, "procedure-required"),
    ({"procedure_version": None}, 400, "procedure-required"),
    ({"procedure_version": 2}, 404, "procedure-not-found"),
    ({"procedure": "AAAAAAAAAAAAAAAAAAAAAA"}, 404, "procedure-not-found"),
    ({"kind": "message"}, 404, "case-not-found"),
    ({"kind": "decision", "procedure": None, "procedure_version": None}, 404, "case-not-found"),
]


async def test_opening_refusals(case_world: CaseWorld) -> None:
    for change, status, code in OPENING_REFUSALS:
        await refused(case_world, case_world.facts(**change), status, code)


async def test_applications_go_from_a_citizen_to_one_team(case_world: CaseWorld) -> None:
    w = case_world
    await refused(w, w.facts(to=(w.team, w.team2)), 400, "application-to-one-team")
    await refused(w, w.facts(to=(w.citizen2.id,)), 400, "application-to-one-team")
    await refused(w, w.facts(to=()), 400, "application-to-one-team")
    await refused(w, w.facts(to=(new_id(),)), 400, "application-to-one-team")
    # a caseworker writing for its team cannot open a case
    staff = w.facts(
        from_id=w.team,
        signer_id=w.cw.id,
        signer_kind="caseworker",
        signer_org=w.a.org,
        to=(w.team2,),
    )
    await refused(w, staff, 403, "application-by-citizen-only")


async def test_the_procedure_must_be_the_teams_orgs(case_world: CaseWorld) -> None:
    w = case_world
    other = new_id()
    await publish(w.client, w.b, procedure(w.b.org, other))
    await refused(w, w.facts(procedure=other), 404, "procedure-not-found")
    # the same procedure to org B's team is fine
    case_id = await open_case(w, procedure=other, to=(w.b_team,))
    row = await case_row(w, case_id)
    assert (row.org_id, row.team_id, row.reference) == (w.b.org, w.b_team, "2026-000001")


async def test_an_existing_case_cannot_be_opened_again(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    await refused(w, w.facts(case_id=case_id), 409, "case-exists")
    # someone else learns nothing about it
    other = w.facts(case_id=case_id, from_id=w.citizen2.id, signer_id=w.citizen2.id)
    await refused(w, other, 404, "case-not-found")


# --- messages in a case ------------------------------------------------------------------------
async def test_only_the_parties_write_in_a_case(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    for facts in (
        # another citizen
        w.facts(
            case_id=case_id,
            kind="message",
            from_id=w.citizen2.id,
            signer_id=w.citizen2.id,
            procedure=None,
            procedure_version=None,
        ),
        # a caseworker of another team of the same org, writing for that team
        w.from_team(case_id, "message", from_id=w.team2, signer_id=w.cw_other.id),
        # a caseworker of another organisation
        w.from_team(case_id, "decision", from_id=w.b_team, signer_id=w.b_cw.id, signer_org=w.b.org),
        # a caseworker of the team's org writing from its personal mailbox
        w.from_team(case_id, "message", from_id=w.cw.id),
        # a citizen's message signed by somebody else
        w.from_citizen(case_id, "message", signer_id=w.citizen2.id),
    ):
        await refused(w, facts, 404, "case-not-found")
    await refused(w, w.from_citizen(new_id(), "message"), 404, "case-not-found")
    # parties addressing anyone else
    await refused(w, w.from_citizen(case_id, "message", to=(w.team, w.team2)), 400, "case-parties")
    await refused(w, w.from_team(case_id, "message", to=(w.citizen2.id,)), 400, "case-parties")
    # procedure parameters only open cases
    await refused(
        w,
        w.from_citizen(case_id, "message", procedure=w.procedure, procedure_version=1),
        400,
        "procedure-unexpected",
    )
    # fitting messages change nothing and announce nothing (the message event does that)
    assert await apply(w.client, w.from_citizen(case_id, "message")) == []
    assert await apply(w.client, w.from_team(case_id, "message")) == []
    assert await apply(w.client, w.from_team(case_id, "message", to=(w.team,))) == []
    assert await apply(w.client, w.from_team(case_id, "message", who=w.connector)) == []
    assert (await case_row(w, case_id)).status == "submitted"


# --- signed status changes -----------------------------------------------------------------------
async def test_a_decision_decides_the_case(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    facts = w.from_team(case_id, "decision")
    new = await apply(w.client, facts)
    row = await case_row(w, case_id)
    assert row.status == "decided"
    assert (await history(w, case_id))[-1] == ("decided", "decision", w.cw.id, facts.message_id)
    assert sorted(e.account_id for e in new) == sorted([w.citizen.id, w.cw.id, w.connector.id])
    assert new[0].data == {"case": case_id, "status": "decided", "reference": row.reference}
    # decided is final for envelopes: no second decision, no withdrawal, no info request
    err = await refused(w, w.from_team(case_id, "decision"), 409, "transition-not-allowed")
    assert err.extra == {"case_status": "decided"}
    await refused(w, w.from_citizen(case_id, "withdrawal"), 409, "transition-not-allowed")
    await refused(w, w.from_team(case_id, "info_request"), 409, "transition-not-allowed")
    # ordinary messages still go
    assert await apply(w.client, w.from_citizen(case_id, "message")) == []


async def test_who_may_decide(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    # a connector writes for the team but a decision is a person's act
    await refused(w, w.from_team(case_id, "decision", who=w.connector), 403, "decision-not-allowed")
    # the citizen cannot decide its own case
    await refused(w, w.from_citizen(case_id, "decision"), 403, "decision-not-allowed")
    assert (await case_row(w, case_id)).status == "submitted"


async def test_a_withdrawal_withdraws_the_case(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    # a caseworker cannot forge the citizen's withdrawal
    await refused(w, w.from_team(case_id, "withdrawal"), 403, "withdrawal-not-allowed")
    await refused(
        w, w.from_team(case_id, "withdrawal", who=w.connector), 403, "withdrawal-not-allowed"
    )
    facts = w.from_citizen(case_id, "withdrawal")
    await apply(w.client, facts)
    assert (await case_row(w, case_id)).status == "withdrawn"
    assert (await history(w, case_id))[-1] == (
        "withdrawn",
        "withdrawal",
        w.citizen.id,
        facts.message_id,
    )
    await refused(w, w.from_team(case_id, "decision"), 409, "transition-not-allowed")
    await refused(w, w.from_citizen(case_id, "withdrawal"), 409, "transition-not-allowed")


async def test_information_requests_and_answers(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    await refused(w, w.from_citizen(case_id, "info_request"), 403, "info-request-not-allowed")
    ask = w.from_team(case_id, "info_request")
    assert len(await apply(w.client, ask)) == 3
    assert (await case_row(w, case_id)).status == "info_requested"
    # a second request changes nothing
    assert await apply(w.client, w.from_team(case_id, "info_request")) == []
    # the team's own messages are no answer
    assert await apply(w.client, w.from_team(case_id, "message")) == []
    assert (await case_row(w, case_id)).status == "info_requested"
    answer = w.from_citizen(case_id, "message")
    assert len(await apply(w.client, answer)) == 3
    assert (await case_row(w, case_id)).status == "in_review"
    # from in_review a citizen's message is just a message
    assert await apply(w.client, w.from_citizen(case_id, "message")) == []
    assert [h[:2] for h in await history(w, case_id)] == [
        ("submitted", "application"),
        ("info_requested", "info_request"),
        ("in_review", "reply"),
    ]
    await apply(w.client, w.from_team(case_id, "decision"))
    assert (await case_row(w, case_id)).status == "decided"


async def test_events_of_a_case_reach_current_members_only(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    async with w.client.app[DB].read() as conn:
        seen = (
            await conn.execute(
                select(events.c.account_id, events.c.type).where(events.c.type == "case")
            )
        ).all()
    assert sorted(str(a) for a, _ in seen) == sorted([w.citizen.id, w.cw.id, w.connector.id])
    assert case_id  # the case exists; no event went to team2, org B or the admin
