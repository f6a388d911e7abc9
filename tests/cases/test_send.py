"""Cases end to end: real envelopes through ``POST /api/v1/messages`` (both databases).

Envelopes are sealed and signed with the crypto core by the people of the case world (their
real keys), exactly as a client does; the server's send path calls the cases effects.
"""

from __future__ import annotations

from typing import Any

from cases.world import CaseWorld
from sqlalchemy import func, select
from support.onboard import Person, new_id, send

from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import seal_message
from postbox.crypto.procedures import form_digest
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db.schema import cases, events, messages


async def sth(w: CaseWorld) -> dict[str, Any]:
    status, served = await send(w.client, "GET", "/api/v1/transparency/sth")
    assert status == 200, served
    return {"size": served["sth"]["size"], "root": served["sth"]["root"]}


async def post(
    w: CaseWorld,
    signer: Person,
    *,
    kind: str,
    case: str | None,
    from_: str | None = None,
    to: list[str] | None = None,
    query: str = "",
    form: dict[str, Any] | None = None,
) -> tuple[int, Any, str]:
    """Seal, sign and send one envelope; (status, answer, message id)."""
    from_ = from_ or signer.id
    to = to or ([w.team] if from_ == signer.id and signer.kind == "citizen" else [w.citizen.id])
    certs = {w.citizen.id: w.citizen.enc_cert, w.citizen2.id: w.citizen2.enc_cert}
    certs.update({team: key.cert for team, key in w.keys.items()})
    message_id = new_id()
    sealed = seal_message(
        content={
            "subject": "Antrag auf Verlängerung",
            "body": "Sehr geehrte Damen und Herren, …",
            "format": "text",
            "form": form,
            "attachments": [],
            "in_reply_to": None,
            "sth": await sth(w),
        },
        message_id=message_id,
        kind=kind,  # type: ignore[arg-type]
        from_=from_,
        signer=signer.id,
        signer_seed=signer.sign_seed,
        to=to,
        recipients=certs,
        thread=None,
        case=case,
        created=w.clock.now,
    )
    resp = await w.client.post(
        "/api/v1/messages" + query,
        data=sealed.body,
        headers={**signer.headers, "Content-Type": "application/json"},
    )
    return resp.status, await resp.json(), message_id


def code(answer: Any) -> str:
    return str(answer.get("type", "")).rsplit(":", 1)[-1]


async def apply_for(w: CaseWorld, citizen: Person | None = None) -> str:
    """A citizen's application (with its form) opens a new case."""
    case = new_id()
    proc = w.procedure_object
    form = {
        "procedure": w.procedure,
        "version": 1,
        "digest": b64e(form_digest(proc)),
        "data": {"name": "Ada Lovelace"},
    }
    status, answer, _ = await post(
        w,
        citizen or w.citizen,
        kind="application",
        case=case,
        form=form,
        query=f"?procedure={w.procedure}&version=1",
    )
    assert status == 201, answer
    return case


async def show(w: CaseWorld, case: str, who: Person) -> dict[str, Any]:
    status, body = await send(w.client, "GET", f"/api/v1/cases/{case}", who=who)
    assert status == 200, body
    return dict(body)


async def stored(w: CaseWorld) -> tuple[int, int]:
    async with w.client.app[DB].read() as conn:
        n_messages = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
        n_cases = (await conn.execute(select(func.count()).select_from(cases))).scalar_one()
    return int(n_messages), int(n_cases)


async def test_an_application_opens_a_case_and_a_decision_decides_it(
    case_world: CaseWorld,
) -> None:
    w = case_world
    case = await apply_for(w)
    mine = await show(w, case, w.citizen)
    assert mine["status"] == "submitted"
    assert mine["reference"] == "2026-000001"
    assert mine["team"] == w.team and mine["procedure"] == {"id": w.procedure, "version": 1}
    assert [m["kind"] for m in mine["messages"]] == ["application"]
    assert [m["kind"] for m in (await show(w, case, w.cw))["messages"]] == ["application"]

    status, answer, _ = await post(w, w.cw, kind="info_request", case=case, from_=w.team)
    assert status == 201, answer
    assert (await show(w, case, w.citizen))["status"] == "info_requested"
    status, answer, _ = await post(w, w.citizen, kind="message", case=case)
    assert status == 201, answer
    assert (await show(w, case, w.citizen))["status"] == "in_review"

    status, answer, decision = await post(w, w.cw, kind="decision", case=case, from_=w.team)
    assert status == 201, answer
    mine = await show(w, case, w.citizen)
    assert mine["status"] == "decided"
    assert mine["history"][-1] == {
        "status": "decided",
        "at": w.clock.now,
        "by": w.cw.id,
        "via": "decision",
        "message": {"from": w.team, "id": decision},
        "label": "signed",
    }
    assert [m["kind"] for m in mine["messages"]] == [
        "application",
        "info_request",
        "message",
        "decision",
    ]
    # the citizen's clients heard of every change
    async with w.client.app[DB].read() as conn:
        rows = await conn.execute(
            select(events.c.data).where(
                events.c.account_id == w.citizen.id, events.c.type == "case"
            )
        )
        statuses = [r[0] for r in rows]
    assert len(statuses) == 4 and '"status":"decided"' in statuses[-1]

    # a decided case cannot be withdrawn any more, and nothing of the refused envelope stays
    before = await stored(w)
    status, answer, _ = await post(w, w.citizen, kind="withdrawal", case=case)
    assert (status, code(answer), answer.get("case_status")) == (
        409,
        "transition-not-allowed",
        "decided",
    )
    assert await stored(w) == before


async def test_a_withdrawal_withdraws_and_cannot_be_forged(case_world: CaseWorld) -> None:
    w = case_world
    case = await apply_for(w)
    before = await stored(w)
    # a caseworker cannot forge the citizen's withdrawal
    status, answer, _ = await post(w, w.cw, kind="withdrawal", case=case, from_=w.team)
    assert (status, code(answer)) == (403, "withdrawal-not-allowed")
    assert await stored(w) == before
    assert (await show(w, case, w.citizen))["status"] == "submitted"
    # nor can a connector decide
    status, answer, _ = await post(w, w.connector, kind="decision", case=case, from_=w.team)
    assert (status, code(answer)) == (403, "decision-not-allowed")
    assert (await show(w, case, w.citizen))["status"] == "submitted"

    status, answer, withdrawal = await post(w, w.citizen, kind="withdrawal", case=case)
    assert status == 201, answer
    mine = await show(w, case, w.citizen)
    assert mine["status"] == "withdrawn"
    assert mine["history"][-1]["message"] == {"from": w.citizen.id, "id": withdrawal}
    status, answer, _ = await post(w, w.cw, kind="decision", case=case, from_=w.team)
    assert (status, code(answer)) == (409, "transition-not-allowed")


async def test_cases_of_others_do_not_exist(case_world: CaseWorld) -> None:
    w = case_world
    case = await apply_for(w)
    before = await stored(w)
    status, answer, _ = await post(w, w.citizen2, kind="message", case=case)
    assert (status, code(answer)) == (404, "case-not-found")
    status, answer, _ = await post(w, w.citizen2, kind="withdrawal", case=case)
    assert (status, code(answer)) == (404, "case-not-found")
    status, answer, _ = await post(
        w, w.cw_other, kind="message", case=case, from_=w.team2, to=[w.citizen.id]
    )
    assert (status, code(answer)) == (404, "case-not-found")
    assert await stored(w) == before


async def test_applications_need_their_procedure(case_world: CaseWorld) -> None:
    w = case_world
    before = await stored(w)
    status, answer, _ = await post(w, w.citizen, kind="application", case=new_id())
    assert (status, code(answer)) == (400, "procedure-required")
    status, answer, _ = await post(
        w, w.citizen, kind="application", case=new_id(), query=f"?procedure={w.procedure}&version=9"
    )
    assert (status, code(answer)) == (404, "procedure-not-found")
    status, answer, _ = await post(
        w, w.citizen, kind="message", case=None, query=f"?procedure={w.procedure}&version=1"
    )
    assert (status, code(answer)) == (400, "procedure-unexpected")
    assert await stored(w) == before
    # two applications get two references
    first, second = await apply_for(w), await apply_for(w, w.citizen2)
    refs = [
        (await show(w, first, w.citizen))["reference"],
        (await show(w, second, w.citizen2))["reference"],
    ]
    assert refs == ["2026-000001", "2026-000002"]
