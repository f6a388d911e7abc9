"""Every answer of the delivery routes as the OpenAPI document describes it (both
databases): real flows drive each operation to its success answer and through its
refusals, and schemathesis' response checks validate status, content type, headers and
body (problem bodies: documented codes only) of each answer.

(``tests/openapi/test_conformance.py`` does the same for the routes of earlier issues.)
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import requests
import schemathesis
from delivery.dbworld import FakeClock
from delivery.test_end_to_end import fetch, send_decision
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.mailworld import MailWorld, Person

from postbox.crypto.encoding import cj
from postbox.crypto.primitives import random_bytes
from postbox.crypto.receipts import sign_read
from postbox.mailbox.delivery.openapi import paths
from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.openapi.document import document

SCHEMA = schemathesis.openapi.from_dict(document())
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = sorted(f"{method.upper()} {path}" for path, item in paths().items() for method in item)
DAY = 86_400_000


class Checked:
    """Calls the live server as one person (or nobody) and validates every answer."""

    def __init__(self, w: MailWorld) -> None:
        self.w = w
        self.seen: set[str] = set()
        self.codes: set[str] = set()

    async def call(
        self,
        who: Person | None,
        method: str,
        template: str,
        params: dict[str, str],
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        path = template.format(**params)
        headers = {}
        if who is not None:
            await who.client.session.refresh()
            tokens = who.client.session.state.tokens
            assert tokens is not None
            headers["Authorization"] = f"Bearer {tokens.access}"
        data = None
        if body is not None:
            data = cj(body)
            headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.w.url + path, data=data, headers=headers, params=query) as r,
        ):
            raw = await r.read()
            status, resp_headers, url = r.status, dict(r.headers), str(r.url)
        response = schemathesis.Response(
            status_code=status,
            headers={name.lower(): [value] for name, value in resp_headers.items()},
            content=raw,
            request=requests.Request(method, url).prepare(),
            elapsed=0.0,
            verify=True,
        )
        case = SCHEMA[template][method.lower()].Case(path_parameters=params)
        case.validate_response(response, checks=CHECKS)
        parsed = json.loads(raw)
        if status < 300:
            self.seen.add(f"{method} {template}")
        else:
            self.codes.add(str(parsed["type"]).removeprefix(PROBLEM_BASE))
        return status, parsed


async def test_every_delivery_answer_matches_the_document(w: MailWorld, clock: FakeClock) -> None:
    c = Checked(w)
    cw, citizen = w.caseworker, w.citizen
    mid, digest = await send_decision(w, clock, citizen)
    late, _ = await send_decision(w, clock, w.citizen2)
    msg = {"from": w.team, "id": mid}
    delivery = "/api/v1/messages/{from}/{id}/delivery"
    reads = "/api/v1/messages/{from}/{id}/reads"
    overdue = "/api/v1/mailboxes/{mailbox}/overdue"
    settings = "/api/v1/orgs/{org}/legal-settings"

    assert (await c.call(None, "GET", "/api/v1/legal-rules", {}))[0] == 200
    assert (await c.call(w.admin, "GET", settings, {"org": w.org}))[0] == 200
    good = {
        "time_zone": "Europe/Berlin",
        "country": "DE",
        "subdivision": "NW",
        "decision_rule": "de-vwvfg-41-2a",
    }
    assert (await c.call(w.admin, "PUT", settings, {"org": w.org}, body=good))[0] == 200
    for bad in ({**good, "time_zone": "Mars/Base"}, {**good, "decision_rule": "at-zustg-35-6"}):
        assert (await c.call(w.admin, "PUT", settings, {"org": w.org}, body=bad))[0] == 400
    assert (await c.call(cw, "PUT", settings, {"org": w.org}, body=good))[0] == 403
    assert (await c.call(citizen, "GET", settings, {"org": w.org}))[0] == 404

    assert (await c.call(cw, "GET", delivery, msg))[0] == 200
    assert (await c.call(w.citizen2, "GET", delivery, msg))[0] == 404
    clock.advance(DAY)
    await fetch(citizen, w.team, mid)
    status, record = await c.call(citizen, "GET", delivery, msg)
    assert status == 200 and record["clock"]["deemed"] is not None

    head = await citizen.client.keys.tree_head()
    receipt = sign_read(
        message=mid,
        digest=digest,
        mailbox=citizen.account,
        reader=citizen.account,
        sth={"size": head["size"], "root": head["root"]},
        read=clock.now,
        reader_seed=citizen.keyring.identity.seed,
    )
    assert (await c.call(citizen, "POST", reads, msg, body=receipt))[0] == 201
    assert (await c.call(citizen, "POST", reads, msg, body=receipt))[0] == 200
    wrong = sign_read(
        message=mid,
        digest=random_bytes(64),
        mailbox=citizen.account,
        reader=citizen.account,
        sth=receipt["read"]["sth"],
        read=clock.now,
        reader_seed=citizen.keyring.identity.seed,
    )
    assert (await c.call(citizen, "POST", reads, msg, body=wrong))[0] == 400
    assert (await c.call(citizen, "POST", reads, msg, body={"read": 1}))[0] == 400
    assert (await c.call(w.citizen2, "POST", reads, msg, body=receipt))[0] == 404
    status, listed = await c.call(cw, "GET", reads, msg)
    assert status == 200 and len(listed["reads"]) == 1
    assert (await c.call(w.citizen2, "GET", reads, msg))[0] == 404

    clock.advance(11 * DAY)
    status, page = await c.call(cw, "GET", overdue, {"mailbox": w.team})
    assert status == 200 and [i["id"] for i in page["overdue"]] == [late]
    status, page = await c.call(cw, "GET", overdue, {"mailbox": w.team}, query={"limit": "1"})
    assert status == 200
    assert (await c.call(cw, "GET", overdue, {"mailbox": w.team}, query={"x": "1"}))[0] == 400
    assert (await c.call(cw, "GET", overdue, {"mailbox": w.team}, query={"limit": "0"}))[0] == 400
    assert (await c.call(citizen, "GET", overdue, {"mailbox": w.team}))[0] == 404
    assert (await c.call(None, "GET", overdue, {"mailbox": w.team}))[0] == 401

    assert sorted(c.seen) == OPERATIONS
    assert {
        "invalid-time-zone",
        "rule-not-applicable",
        "admin-only",
        "org-not-found",
        "message-not-found",
        "receipt-mismatch",
        "malformed",
        "unknown-parameter",
        "invalid-parameter",
        "mailbox-not-found",
        "unauthorized",
    } <= c.codes
