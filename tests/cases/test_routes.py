"""The case routes through the real server (both databases): who sees what, status changes,
listing with filters and keyset pagination, the reference pattern."""

from __future__ import annotations

from typing import Any

from cases.world import CaseWorld, apply, open_case
from sqlalchemy import select
from support.onboard import Person, new_id, send

from postbox.mailbox.appkeys import DB
from postbox.mailbox.db.schema import events


async def get(w: CaseWorld, path: str, who: Person) -> tuple[int, Any]:
    return await send(w.client, "GET", path, who=who)


async def refused(
    w: CaseWorld, method: str, path: str, body: Any, who: Person, status: int, code: str
) -> Any:
    got, answer = await send(w.client, method, path, body, who=who)
    assert (got, answer["type"].rsplit(":", 1)[1]) == (status, code), answer
    return answer


async def case_events(w: CaseWorld, account: str) -> list[str]:
    async with w.client.app[DB].read() as conn:
        rows = await conn.execute(
            select(events.c.data)
            .where(events.c.account_id == account, events.c.type == "case")
            .order_by(events.c.seq)
        )
        return [r[0] for r in rows]


async def test_who_sees_a_case(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    status, body = await get(w, f"/api/v1/cases/{case_id}", w.citizen)
    assert status == 200, body
    assert body["status"] == "submitted" and body["citizen"] == w.citizen.id
    assert body["reference"] == "2026-000001"
    assert body["procedure"] == {"id": w.procedure, "version": 1}
    assert body["history"] == [
        {
            "status": "submitted",
            "at": w.clock.now,
            "by": w.citizen.id,
            "via": "application",
            "message": body["opened"],
            "label": "signed",
        }
    ]
    assert body["moves"] == []  # the citizen moves nothing
    for member in (w.cw, w.connector):
        status, body = await get(w, f"/api/v1/cases/{case_id}", member)
        assert status == 200, body
        assert body["moves"] == ["in_review", "info_requested"]
    # everyone else: exactly as for a case that does not exist
    for other in (w.citizen2, w.cw_other, w.b_cw, w.a.admin, w.b.admin):
        await refused(w, "GET", f"/api/v1/cases/{case_id}", None, other, 404, "case-not-found")
    await refused(w, "GET", f"/api/v1/cases/{new_id()}", None, w.citizen, 404, "case-not-found")
    await refused(w, "GET", "/api/v1/cases/not-an-id", None, w.citizen, 404, "case-not-found")


async def test_status_changes_by_team_members(case_world: CaseWorld) -> None:
    w = case_world
    case_id = await open_case(w)
    path = f"/api/v1/cases/{case_id}/status"
    before = await case_events(w, w.citizen.id)
    w.clock.advance(60_000)
    status, body = await send(w.client, "POST", path, {"status": "in_review"}, who=w.cw)
    assert status == 200, body
    assert body["status"] == "in_review" and body["updated"] == w.clock.now
    assert body["history"][-1] == {
        "status": "in_review",
        "at": w.clock.now,
        "by": w.cw.id,
        "via": "status",
        "message": None,
        "label": "server metadata",
    }
    assert body["moves"] == ["info_requested"]
    # the citizen and both team members got an event
    for account in (w.citizen.id, w.cw.id, w.connector.id):
        assert len(await case_events(w, account)) == len(before) + 1
    assert '"status":"in_review"' in (await case_events(w, w.citizen.id))[-1]
    # a connector of the team may too
    status, body = await send(w.client, "POST", path, {"status": "info_requested"}, who=w.connector)
    assert status == 200, body
    # the citizen sees the case but moves nothing; others do not see it at all
    await refused(w, "POST", path, {"status": "in_review"}, w.citizen, 403, "status-by-team-only")
    for other in (w.citizen2, w.cw_other, w.b_cw, w.a.admin):
        await refused(w, "POST", path, {"status": "in_review"}, other, 404, "case-not-found")
    # the table decides
    await refused(w, "POST", path, {"status": "info_requested"}, w.cw, 409, "status-unchanged")
    for signed in ("decided", "withdrawn"):
        answer = await refused(
            w, "POST", path, {"status": signed}, w.cw, 409, "signed-envelope-required"
        )
        assert answer["case_status"] == "info_requested"
    for target in ("submitted", "closed"):
        answer = await refused(
            w, "POST", path, {"status": target}, w.cw, 409, "transition-not-allowed"
        )
        assert answer["case_status"] == "info_requested"
    # malformed bodies
    for body in ({"status": "archived"}, {}, {"status": "closed", "why": "x"}, {"status": 1}):
        await refused(w, "POST", path, body, w.cw, 400, "malformed")
    # after a signed decision the team closes the case
    await apply(w.client, w.from_team(case_id, "decision"))
    status, body = await send(w.client, "POST", path, {"status": "closed"}, who=w.cw)
    assert status == 200, body
    assert [h["status"] for h in body["history"]] == [
        "submitted",
        "in_review",
        "info_requested",
        "decided",
        "closed",
    ]
    assert [h["label"] for h in body["history"]] == [
        "signed",
        "server metadata",
        "server metadata",
        "signed",
        "server metadata",
    ]
    assert body["moves"] == []
    await refused(w, "POST", path, {"status": "in_review"}, w.cw, 409, "transition-not-allowed")


async def test_listing_filters_and_pages(case_world: CaseWorld) -> None:
    w = case_world
    mine = [await open_case(w) for _ in range(5)]
    theirs = await open_case(w, from_id=w.citizen2.id, signer_id=w.citizen2.id)
    elsewhere = await open_case(w, to=(w.team2,))
    status, body = await get(w, "/api/v1/cases", w.citizen)
    assert status == 200, body
    assert [c["case"] for c in body["cases"]] == [elsewhere, *reversed(mine)]
    assert body["next"] is None
    references = [c["reference"] for c in body["cases"]]
    assert len(set(references)) == len(references)
    status, body = await get(w, "/api/v1/cases", w.citizen2)
    assert [c["case"] for c in body["cases"]] == [theirs]
    status, body = await get(w, "/api/v1/cases", w.cw)
    assert [c["case"] for c in body["cases"]] == [theirs, *reversed(mine)]
    status, body = await get(w, "/api/v1/cases", w.cw_other)
    assert [c["case"] for c in body["cases"]] == [elsewhere]
    for nobody in (w.b_cw, w.a.admin):
        status, body = await get(w, "/api/v1/cases", nobody)
        assert (status, body["cases"]) == (200, [])
    # pages of two, newest first, until `next` is null
    seen: list[str] = []
    path = f"/api/v1/cases?mailbox={w.team}&limit=2"
    while True:
        status, body = await get(w, path, w.cw)
        assert status == 200, body
        assert len(body["cases"]) <= 2
        seen += [c["case"] for c in body["cases"]]
        if body["next"] is None:
            break
        path = f"/api/v1/cases?mailbox={w.team}&limit=2&before={body['next']}"
    assert seen == [theirs, *reversed(mine)]
    # status filter
    await apply(w.client, w.from_team(mine[0], "decision"))
    status, body = await get(w, "/api/v1/cases?status=decided", w.cw)
    assert [c["case"] for c in body["cases"]] == [mine[0]]
    status, body = await get(w, f"/api/v1/cases?status=submitted&mailbox={w.citizen.id}", w.citizen)
    assert [c["case"] for c in body["cases"]] == [elsewhere, *reversed(mine[1:])]
    # mailboxes the caller does not act for
    for who, mailbox in ((w.cw, w.team2), (w.citizen, w.team), (w.citizen, w.citizen2.id)):
        await refused(
            w, "GET", f"/api/v1/cases?mailbox={mailbox}", None, who, 404, "case-mailbox-not-found"
        )
    for query in (
        "limit=0",
        "limit=201",
        "limit=01",
        "limit=x",
        "before=0",
        "status=open",
        "mailbox=abc",
        "limit=2&limit=3",
        "before=99999999999999999",
    ):
        await refused(w, "GET", f"/api/v1/cases?{query}", None, w.cw, 400, "invalid-filter")
    await refused(w, "GET", "/api/v1/cases?page=2", None, w.cw, 400, "unknown-parameter")


async def test_the_reference_pattern(case_world: CaseWorld) -> None:
    w = case_world
    path = f"/api/v1/orgs/{w.a.org}/case-pattern"
    status, body = await get(w, path, w.a.admin)
    assert (status, body) == (200, {"org": w.a.org, "pattern": "{year}-{seq:6}", "default": True})
    status, body = await send(
        w.client, "PUT", path, {"pattern": "ABH-{year}-{seq:6}"}, who=w.a.admin
    )
    assert (status, body) == (
        200,
        {"org": w.a.org, "pattern": "ABH-{year}-{seq:6}", "default": False},
    )
    first = await open_case(w)
    second = await open_case(w)
    refs = [
        (await get(w, f"/api/v1/cases/{c}", w.citizen))[1]["reference"] for c in (first, second)
    ]
    assert refs == ["ABH-2026-000001", "ABH-2026-000002"]
    for bad in (
        "",
        "ABH-{year}",
        "{seq}{seq}",
        "ABH-{jahr}-{seq}",
        "ABH–{seq}",
        "{seq:0}",
        "{seq:13}",
        "A" * 65,
        "ä{seq}",
        "{seq}\n",
    ):
        await refused(w, "PUT", path, {"pattern": bad}, w.a.admin, 400, "invalid-pattern")
    await refused(w, "PUT", path, {"pattern": 5}, w.a.admin, 400, "malformed")
    await refused(w, "PUT", path, {"pattern": "{seq}", "x": 1}, w.a.admin, 400, "malformed")
    # admins of this org only
    await refused(w, "GET", path, None, w.cw, 403, "admin-only")
    await refused(w, "PUT", path, {"pattern": "{seq}"}, w.cw, 403, "admin-only")
    await refused(w, "GET", path, None, w.b.admin, 404, "org-not-found")
    await refused(w, "GET", path, None, w.citizen, 404, "org-not-found")
    status, body = await get(w, path, w.a.admin)
    assert body["pattern"] == "ABH-{year}-{seq:6}"
