"""HTTP routes of team mailbox cards: parse, authenticate, call one service method, render."""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import principal
from postbox.mailbox.appkeys import CARDS, DB
from postbox.mailbox.cards.service import CardService, parse_ids


async def start(app: web.Application) -> None:
    app[CARDS] = CardService(app[DB])


async def get_card(request: web.Request) -> web.Response:
    card = await request.app[CARDS].card(principal(request), request.match_info["mailbox"])
    return web.json_response(card.to_json())


async def get_cards(request: web.Request) -> web.Response:
    ids = parse_ids(request.query.items())
    cards = await request.app[CARDS].cards(principal(request), ids)
    return web.json_response(cards.to_json())


async def org_cards(request: web.Request) -> web.Response:
    cards = await request.app[CARDS].of_org(principal(request), request.match_info["org"])
    return web.json_response({"cards": [c.to_json() for c in cards]})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/mailboxes/cards", get_cards)
    r.add_get("/api/v1/mailboxes/{mailbox}/card", get_card)
    r.add_get("/api/v1/orgs/{org}/cards", org_cards)
