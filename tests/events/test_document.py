"""The live-events route answers exactly as the OpenAPI document says: 101 on an upgrade,
426 problem JSON without one (checked with schemathesis' response checks)."""

from __future__ import annotations

import dataclasses

from openapi.test_conformance import Recorder, validate
from pytest_aiohttp import AiohttpClient
from support.onboard import FakeClock

from postbox.mailbox.app import create_app
from postbox.mailbox.events import routes
from postbox.mailbox.http import API_SECURITY_HEADERS
from postbox.mailbox.openapi.document import document
from postbox.mailbox.settings import Settings


async def test_the_route_is_documented_as_public_and_websocket() -> None:
    op = document()["paths"][routes.PATH]["get"]
    assert op["security"] == []
    assert set(op["responses"]) == {"101", "426"}
    assert op["x-postbox-websocket"]["client"] == [{"$ref": "#/components/schemas/EventsAuthFrame"}]


async def test_answers_match_the_document(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    recorder = Recorder()
    app = create_app(dataclasses.replace(settings, ws_auth_seconds=1).validate(), clock=FakeClock())
    app.on_response_prepare.append(recorder)
    client = await aiohttp_client(app)
    resp = await client.get(routes.PATH)
    assert resp.status == 426
    ws = await client.ws_connect(routes.PATH)
    await ws.receive(timeout=30)  # closed: no auth frame
    statuses = sorted(e.status for e in recorder.exchanges)
    assert statuses == [101, 426]
    for exchange in recorder.exchanges:
        validate(exchange)
        for name in API_SECURITY_HEADERS:
            assert name in exchange.headers, (exchange.status, name)
