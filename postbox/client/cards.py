"""Team mailbox cards: ``client.cards``, the names to show for team mailboxes.

A card is what the server says about a team mailbox the account may write to or has
exchanged mail with: the team's display names and its organisation's, and whether citizens
may write to the organisation's teams (``GET /api/v1/mailboxes/{mailbox}/card``,
``GET /api/v1/mailboxes/cards?ids=…``, ``GET /api/v1/orgs/{org}/cards``). Names are server
metadata, not signed: show them as labels (with the id at hand), never as proof of who
wrote — that is the verified sender of :meth:`postbox.client.inbox.Inbox.open`.

:meth:`Cards.lookup` batches and remembers answers for the client's lifetime, so a list of
messages costs one request; ids without a card (a person's mailbox, another organisation's
team, an unknown id) are remembered as such and shown by their id (:meth:`Cards.label`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from postbox.client.errors import ProtocolViolation, ServerProblem
from postbox.client.http import segment
from postbox.client.session import Session
from postbox.crypto import shapes
from postbox.crypto.errors import CryptoError

#: ids per batch request (the server's limit)
MAX_BATCH: Final = 200
#: the language names are shown in when the account's is missing
DEFAULT_LANGUAGE: Final = "de"
#: between the organisation's and the team's name (an en dash)
DASH: Final = "\u2013"

_CARD = shapes.obj(
    {
        "team": shapes.ID,
        "names": shapes.free_object,
        "org": shapes.ID,
        "org_names": shapes.free_object,
        "citizens_may_write": shapes.enum_bool(),
    }
)
_BATCH = shapes.obj({"cards": shapes.array(_CARD), "unknown": shapes.array(shapes.ID)})
_LIST = shapes.obj({"cards": shapes.array(_CARD)})


def _need(shape: shapes.Shape, value: Any, what: str) -> None:
    try:
        shapes.check(shape, value, what)
    except CryptoError as exc:
        raise ProtocolViolation(f"{what}: {exc}") from exc


def _names(value: Mapping[str, Any], what: str) -> dict[str, str]:
    if not value or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ProtocolViolation(f"{what}: expected an object of language → name")
    return dict(value)


def pick(names: Mapping[str, str], language: str = DEFAULT_LANGUAGE) -> str:
    """The name in ``language``, else German, else the first language's."""
    if language in names:
        return names[language]
    if DEFAULT_LANGUAGE in names:
        return names[DEFAULT_LANGUAGE]
    return names[sorted(names)[0]]


@dataclass(frozen=True)
class Card:
    """A team mailbox's card (server metadata)."""

    team: str
    names: dict[str, str]
    org: str
    org_names: dict[str, str]
    citizens_may_write: bool

    @classmethod
    def from_json(cls, value: Any) -> Card:
        _need(_CARD, value, "team card")
        return cls(
            value["team"],
            _names(value["names"], "team card names"),
            value["org"],
            _names(value["org_names"], "team card org_names"),
            value["citizens_may_write"],
        )

    def team_name(self, language: str = DEFAULT_LANGUAGE) -> str:
        return pick(self.names, language)

    def org_name(self, language: str = DEFAULT_LANGUAGE) -> str:
        return pick(self.org_names, language)

    def label(self, language: str = DEFAULT_LANGUAGE) -> str:
        """``<organisation> - Team <team>`` (with an en dash), e.g. the immigration office's team
        for residence permits."""
        return f"{self.org_name(language)} {DASH} Team {self.team_name(language)}"


class Cards:
    """``client.cards``: team mailbox cards, fetched in batches and remembered."""

    def __init__(self, session: Session) -> None:
        self.session = session
        #: mailbox id → its card, or None: no card for this account
        self._known: dict[str, Card | None] = {}

    async def card(self, mailbox: str) -> Card:
        """One card (``NotFoundError`` when the mailbox has none for this account)."""
        body = await self.session.call("GET", f"/api/v1/mailboxes/{segment(mailbox)}/card")
        card = Card.from_json(body)
        if card.team != mailbox:
            raise ProtocolViolation("GET /mailboxes/{mailbox}/card: the card of another team")
        self._known[mailbox] = card
        return card

    async def lookup(self, mailboxes: Iterable[str]) -> dict[str, Card]:
        """The cards of those of ``mailboxes`` that have one, asking the server only about
        ids this client has not asked about before (one request per 200 ids)."""
        wanted = list(dict.fromkeys(mailboxes))
        missing = [m for m in wanted if m not in self._known]
        for start in range(0, len(missing), MAX_BATCH):
            chunk = missing[start : start + MAX_BATCH]
            body = await self.session.call(
                "GET", "/api/v1/mailboxes/cards", params={"ids": ",".join(chunk)}
            )
            _need(_BATCH, body, "team cards")
            cards = [Card.from_json(c) for c in body["cards"]]
            answered = [c.team for c in cards] + list(body["unknown"])
            if sorted(answered) != sorted(chunk):
                raise ProtocolViolation("GET /mailboxes/cards: not an answer for the ids asked")
            for mailbox in chunk:
                self._known[mailbox] = None
            for card in cards:
                self._known[card.team] = card
        return {m: c for m in wanted if (c := self._known.get(m)) is not None}

    async def of_org(self, org: str) -> list[Card]:
        """The organisation's teams this account may write to (a recipient picker)."""
        body = await self.session.call("GET", f"/api/v1/orgs/{segment(org)}/cards")
        _need(_LIST, body, "team cards")
        cards = [Card.from_json(c) for c in body["cards"]]
        if any(c.org != org for c in cards):
            raise ProtocolViolation("GET /orgs/{org}/cards: a team of another organisation")
        for card in cards:
            self._known[card.team] = card
        return cards

    async def label(self, mailbox: str, language: str = DEFAULT_LANGUAGE) -> str:
        """What to call a mailbox: its card's label, else its id (also when the lookup
        fails: a name is a convenience, never a reason to stop showing mail)."""
        try:
            card = (await self.lookup([mailbox])).get(mailbox)
        except (ServerProblem, ProtocolViolation):
            card = None
        return mailbox if card is None else card.label(language)

    def forget(self) -> None:
        """Drop what was remembered (names may change; a long-running client calls this)."""
        self._known.clear()


__all__ = ["DASH", "Card", "Cards", "pick"]
