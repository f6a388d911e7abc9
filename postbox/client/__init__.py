"""``postbox.client``: the async Python client of a Postbox server, over real HTTP.

One :class:`Client` per server and login name::

    async with Client("https://postbox.example", login="a@example.org") as client:
        await client.connect()                       # pins the server (or checks the pins)
        result = await client.account.login("a@example.org", passphrase)
        verified = await client.keys.subject(account_id)

Parts (one concept per module): :mod:`~postbox.client.session` (pins, tokens, calls),
:mod:`~postbox.client.state` (the local state file), :mod:`~postbox.client.keys` (verified
keys from the transparency log), :mod:`~postbox.client.account` (activation, login, the
key bundle, sessions), :mod:`~postbox.client.invitations`, :mod:`~postbox.client.orgs`
(an org admin's work), :mod:`~postbox.client.teams`, :mod:`~postbox.client.cards` (the names of team
mailboxes), :mod:`~postbox.client.rootfile` (the
encrypted org root key file) and :mod:`~postbox.client.errors`. Later features (messages,
attachments, receipts) extend the same client.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import aiohttp

from postbox.client.account import Account
from postbox.client.attachments import Attachments
from postbox.client.cards import Cards
from postbox.client.cases import Cases
from postbox.client.errors import ClientError
from postbox.client.events import Events
from postbox.client.inbox import Inbox
from postbox.client.invitations import Invitations
from postbox.client.keys import KeyDirectory
from postbox.client.messages import Messages
from postbox.client.orgs import OrgAdmin
from postbox.client.procedures import Procedures
from postbox.client.receipts import Receipts
from postbox.client.session import Clock, Pins, ServerInfo, Session, wall_clock
from postbox.client.state import StateStore
from postbox.client.teams import Teams


class Client:
    """Everything a user agent does with one server, for one login name."""

    def __init__(
        self,
        url: str,
        *,
        state_dir: Path | None = None,
        login: str | None = None,
        pins: Pins | None = None,
        clock: Clock = wall_clock,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.session = Session(
            url, store=StateStore(state_dir), login=login, pins=pins, clock=clock, http=http
        )
        self.keys = KeyDirectory(self.session)
        self.account = Account(self.session, self.keys)
        self.invitations = Invitations(self.session, self.keys)
        self.orgs = OrgAdmin(self.session, self.keys)
        self.teams = Teams(self.session, self.keys, self.account)
        self.procedures = Procedures(self.session, self.keys)
        self.cases = Cases(self.session)
        self.cards = Cards(self.session)
        self.events = Events(self.session)
        self.attachments = Attachments(self.session)
        self.receipts = Receipts(self.session, self.keys)
        self.messages = Messages(
            self.session, self.keys, self.attachments, self.procedures, self.cases
        )
        self.inbox = Inbox(self.session, self.keys, self.teams, self.attachments)

    @property
    def origin(self) -> str:
        return self.session.origin

    async def connect(self) -> ServerInfo:
        """Read the server's keys, pin them (first contact) or compare them with the pins,
        and check once that leaf 0 of the log names the same keys."""
        info = await self.session.server()
        if not self.session.state.server_checked:
            await self.keys.check_server_key()
        return info

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["Client", "ClientError", "Pins", "ServerInfo"]
