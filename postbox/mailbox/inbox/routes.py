"""HTTP routes of the inbox: mailboxes, listing, fetch, move/flag/read, delete, retention.

Parse, authenticate, call one service method, render. The feature's start builds the
service and the retention collector and starts the collector as a background job.
"""

from __future__ import annotations

from aiohttp import web

from postbox.crypto.encoding import cj
from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import (
    AUDIT,
    BACKGROUND,
    CLOCK,
    DB,
    EVENT_BUS,
    INBOX,
    INBOX_COLLECTOR,
    KEYLOG,
    SECRETS,
    SETTINGS,
)
from postbox.mailbox.http import read_json
from postbox.mailbox.inbox.retention import Collector
from postbox.mailbox.inbox.service import Change, Fetched, InboxService, ListQuery, Rule


async def start(app: web.Application) -> None:
    """Create the inbox service and start the retention collector (after keys, events and
    delivery have started)."""
    bus = app[EVENT_BUS]
    app[INBOX] = InboxService(
        app[DB],
        app[CLOCK],
        chain=app[KEYLOG].heads.keys,
        wake=bus.wake,
        audit=app[AUDIT],
        receipt_seed=app[SECRETS].receipt_seed,
    )
    collector = app[INBOX_COLLECTOR] = Collector(app[DB], app[CLOCK], wake=bus.wake)
    interval = float(app[SETTINGS].gc_interval_seconds)

    async def job() -> None:
        await collector.run(interval)

    app[BACKGROUND].spawn("inbox-retention", job)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=cj(value), status=status, content_type="application/json")


def render_fetched(f: Fetched) -> bytes:
    """The answer to a fetch, canonical JSON, with the stored wire bytes spliced in as they
    are (``wire`` sorts last, so the result is exactly ``cj`` of the whole object)."""
    head = cj(
        {
            "key": f.key,
            "receipt": f.receipt,
            "sender": f.sender,
            "summary": f.summary.to_json(),
        }
    )
    return head[:-1] + b',"wire":' + f.wire + b"}"


async def list_mailboxes(request: web.Request) -> web.Response:
    views = await request.app[INBOX].mailboxes(principal(request))
    return _json({"mailboxes": [v.to_json() for v in views]})


async def list_messages(request: web.Request) -> web.Response:
    query = ListQuery.parse(request.query.items())
    page = await request.app[INBOX].list(principal(request), request.match_info["mailbox"], query)
    return _json(page.to_json())


def _ref(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["mailbox"], info["from"], info["id"]


async def get_message(request: web.Request) -> web.Response:
    fetched = await request.app[INBOX].fetch(principal(request), *_ref(request))
    return web.Response(body=render_fetched(fetched), content_type="application/json")


async def patch_message(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    summary = await request.app[INBOX].change(
        principal(request), *_ref(request), Change.from_json(body)
    )
    return _json(summary.to_json())


async def delete_message(request: web.Request) -> web.Response:
    await request.app[INBOX].delete(principal(request), *_ref(request))
    return web.Response(status=204)


async def get_retention(request: web.Request) -> web.Response:
    rule = await request.app[INBOX].retention(principal(request), request.match_info["org"])
    return _json(rule.to_json())


async def put_retention(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].max_json_bytes)
    rule = await request.app[INBOX].set_retention(
        principal(request), request.match_info["org"], Rule.from_json(body)
    )
    return _json(rule.to_json())


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/mailboxes", list_mailboxes)
    r.add_get("/api/v1/mailboxes/{mailbox}/messages", list_messages)
    r.add_get("/api/v1/mailboxes/{mailbox}/messages/{from}/{id}", get_message)
    r.add_patch("/api/v1/mailboxes/{mailbox}/messages/{from}/{id}", patch_message)
    r.add_delete("/api/v1/mailboxes/{mailbox}/messages/{from}/{id}", delete_message)
    r.add_get("/api/v1/orgs/{org}/retention", get_retention)
    r.add_put("/api/v1/orgs/{org}/retention", put_retention)
