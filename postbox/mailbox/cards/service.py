"""Team mailbox cards: what any account may learn about a team it may write to or has
written with — the team's display names and its organisation's (and whether citizens may
write to the organisation's teams).

Rules:

* **Who sees a card.** Staff (caseworkers, connectors, admins) see the cards of their own
  organisation's teams. A citizen sees the cards of the teams of organisations that let
  citizens write (``organisations.citizens_may_write``), and of the teams it has exchanged
  mail with whatever the flag: a party of one of its threads, the team of one of its
  cases, the sender of a message in its mailbox, a recipient of one of its messages.
  Nobody else sees any (operators: none).
* **One answer for "no".** A team the caller may not see, a team of another organisation,
  an account's mailbox and an id that names nothing all get the same answer
  (``404 mailbox-not-found``; in a batch, the id is listed under ``unknown``), so no
  answer tells whether another organisation's team exists.
* **An organisation's cards** (the recipient picker): staff of the organisation get every
  team; a citizen gets every team of an organisation that lets citizens write; for
  everyone else the organisation does not exist (``404 org-not-found``, as an unknown id).

Cards are server metadata (names are not signed): clients show them as labels, never as
proof of who wrote (that is the verified sender's chain and the pinned org root).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import shapes
from postbox.crypto.errors import CryptoError
from postbox.mailbox.access import Principal
from postbox.mailbox.accounts.service import STAFF_KINDS
from postbox.mailbox.cards import store
from postbox.mailbox.db.engine import Database
from postbox.mailbox.errors import BadRequest, NotFound
from postbox.mailbox.orgs.service import org_not_found

#: ids in one batch (a page of a mailbox listing names at most 200 senders)
MAX_CARDS: Final = 200
#: the query parameter of the batch
IDS: Final = "ids"


def mailbox_not_found() -> NotFound:
    return NotFound("no such mailbox", code="mailbox-not-found")


def _is_id(value: str) -> bool:
    try:
        shapes.ID(value, "id")
    except CryptoError:
        return False
    return True


@dataclass(frozen=True)
class Card:
    team: str
    names: dict[str, str]
    org: str
    org_names: dict[str, str]
    citizens_may_write: bool

    @classmethod
    def of(cls, row: store.CardRow) -> Card:
        return cls(row.team_id, row.names, row.org_id, row.org_names, row.citizens_may_write)

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "names": self.names,
            "org": self.org,
            "org_names": self.org_names,
            "citizens_may_write": self.citizens_may_write,
        }


@dataclass(frozen=True)
class Cards:
    """A batch's answer: the cards in the order asked, and the ids without one."""

    cards: tuple[Card, ...]
    unknown: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"cards": [c.to_json() for c in self.cards], "unknown": list(self.unknown)}


def parse_ids(params: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """``?ids=a,b,c``: exactly one ``ids``, 1…:data:`MAX_CARDS` ids (repeats are dropped,
    the first place counts); any other parameter is refused."""
    given: list[str] = []
    for name, value in params:
        if name != IDS:
            raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
        given.append(value)
    if not given:
        raise BadRequest(f"{IDS} is required", code="missing-parameter")
    if len(given) > 1:
        raise BadRequest(f"{IDS} given twice", code="invalid-query")
    items = given[0].split(",")
    if len(items) > MAX_CARDS:
        raise BadRequest(f"at most {MAX_CARDS} ids", code="invalid-query")
    if not all(_is_id(i) for i in items):
        raise BadRequest(f"{IDS}: comma-separated ids", code="invalid-query")
    return tuple(dict.fromkeys(items))


class CardService:
    """``app[CARDS]``: the cards of team mailboxes, for whoever may see them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _visible(
        self, conn: AsyncConnection, who: Principal, ids: Sequence[str]
    ) -> dict[str, store.CardRow]:
        if who.kind in STAFF_KINDS:
            found = await store.team_cards(conn, ids)
            return {i: c for i, c in found.items() if c.org_id == who.org_id}
        if who.kind != "citizen":
            return {}
        found = await store.team_cards(conn, ids)
        closed = [i for i, c in found.items() if not c.citizens_may_write]
        exchanged = await store.exchanged_with(conn, who.account_id, closed)
        return {i: c for i, c in found.items() if c.citizens_may_write or i in exchanged}

    async def card(self, who: Principal, mailbox_id: str) -> Card:
        if not _is_id(mailbox_id):
            raise mailbox_not_found()
        async with self._db.read() as conn:
            found = await self._visible(conn, who, [mailbox_id])
        if mailbox_id not in found:
            raise mailbox_not_found()
        return Card.of(found[mailbox_id])

    async def cards(self, who: Principal, ids: Sequence[str]) -> Cards:
        async with self._db.read() as conn:
            found = await self._visible(conn, who, ids)
        return Cards(
            tuple(Card.of(found[i]) for i in ids if i in found),
            tuple(i for i in ids if i not in found),
        )

    async def of_org(self, who: Principal, org_id: str) -> list[Card]:
        """The organisation's teams the caller may write to (see the module docs)."""
        staff = who.kind in STAFF_KINDS and who.org_id == org_id
        if not staff and who.kind != "citizen":
            raise org_not_found()
        async with self._db.read() as conn:
            # a citizen: only an organisation that lets citizens write exists for it
            if not staff and not await store.citizens_may_write(conn, org_id):
                raise org_not_found()
            rows = await store.org_cards(conn, org_id)
        return [Card.of(r) for r in rows]
