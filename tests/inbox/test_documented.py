"""Every inbox answer of a real flow is what the OpenAPI document says: the status is
documented for the operation, and the body matches its schema (problems: their codes).

The fuzzer (``tests/openapi``) cannot name real messages, so it mostly sees 404s here; this
drives each operation to its success answer and through its refusals (both DBs).
"""

from __future__ import annotations

from typing import Any

from inbox.world import InboxWorld, box, ref
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # schemathesis brings it
from support.onboard import Person, send

from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.openapi.document import document

ROUTE = "/api/v1/mailboxes/{mailbox}/messages/{from}/{id}"


def check(path: str, method: str, status: int, body: Any) -> None:
    doc = document()
    operation = doc["paths"][path][method]
    response = operation["responses"].get(str(status))
    assert response is not None, (method, path, status, body)
    content = response.get("content")
    if content is None:
        assert body is None, (method, path, status, body)
        return
    (media,) = content.values()
    schema = {"components": doc["components"], **media["schema"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, (method, path, status, [e.message for e in errors][:3])
    if status >= 400:
        assert body["type"].startswith(PROBLEM_BASE)


async def call(
    w: InboxWorld, who: Person, method: str, url: str, template: str, body: Any = None
) -> Any:
    status, answer = await send(w.client, method.upper(), url, body, who=who)
    check(template, method, status, answer)
    return status, answer


async def test_inbox_answers_match_the_document(inbox_world: InboxWorld) -> None:
    w = inbox_world
    doc = await w.upload(w.c1, b"%PDF " * 100)
    sealed = w.seal(w.c1, [w.team], attachments=[doc])
    await w.post(w.c1, sealed)
    reply = await w.team_writes(w.c1)
    listing = "/api/v1/mailboxes/{mailbox}/messages"

    assert (await call(w, w.cw1, "get", "/api/v1/mailboxes", "/api/v1/mailboxes"))[0] == 200
    for who, mailbox in ((w.cw1, w.team), (w.c1, w.c1.id)):
        status, page = await call(w, who, "get", box(mailbox) + "?limit=1", listing)
        assert status == 200 and page["messages"]
        status, _ = await call(w, who, "get", box(mailbox) + "?folder=sent", listing)
        assert status == 200
    status, page = await call(w, w.cw1, "get", box(w.team) + "?limit=1&folder=sent", listing)
    for query in ("?limit=0", "?before=x", "?x=1"):
        assert (await call(w, w.cw1, "get", box(w.team) + query, listing))[0] == 400
    assert (await call(w, w.c2, "get", box(w.c1.id), listing))[0] == 404

    for who, mailbox, s in ((w.cw1, w.team, sealed), (w.c1, w.c1.id, reply)):
        assert (await call(w, who, "get", ref(mailbox, s), ROUTE))[0] == 200
    assert (await call(w, w.c2, "get", ref(w.c1.id, reply), ROUTE))[0] == 404
    path = ref(w.team, sealed)
    for body, expected in (
        ({"read": True, "flagged": True}, 200),
        ({"folder": "archive"}, 200),
        ({"folder": "sent"}, 409),
        ({}, 400),
    ):
        assert (await call(w, w.cw1, "patch", path, ROUTE, body))[0] == expected
    assert (await call(w, w.cw1, "delete", path, ROUTE))[0] == 204
    assert (await call(w, w.cw1, "delete", path, ROUTE))[0] == 404

    retention = f"/api/v1/orgs/{w.org}/retention"
    template = "/api/v1/orgs/{org}/retention"
    rule = {"delete_after_days": None, "trash_days": 14}
    assert (await call(w, w.c1, "get", retention, template))[0] == 200
    assert (await call(w, w.admin, "put", retention, template, rule))[0] == 200
    assert (await call(w, w.cw1, "put", retention, template, rule))[0] == 403
    assert (await call(w, w.admin, "put", retention, template, {"trash_days": 1}))[0] == 400
