"""Reading mailboxes: the list of mailboxes, listing, fetching, moving, deleting, retention.

Rules:

* **Access.** A caller reads a mailbox it acts for: its own, and each team it is a current
  member of (:func:`postbox.mailbox.mailboxes.store.may_act_for`; a removed member loses
  access at once). Any other mailbox does not exist for the caller: 404
  ``mailbox-not-found``. Within a message route, a mailbox the caller does not act for and
  a message that is not in that mailbox give the same 404 ``message-not-found``.
* **Listing** is newest first, by keyset on ``mailbox_entries.pk``; the cursor is opaque
  (8 bytes, b64). A page never repeats or skips an entry while new messages arrive: new
  entries get larger keys and appear before the cursor, not behind it. Without a folder
  the listing is the inbox, except with a ``thread`` or ``case`` filter: then it is every
  folder but the trash.
* **Fetching** returns the wire envelope exactly as stored (the client verifies it), the
  mailbox's ``keys`` entry, the signed submission receipt, the summary and the signer's
  key chain with proofs as ``GET /api/v1/keys/{signer}`` answers it. A fetch through the
  caller's own mailbox of a message it did not send runs
  :func:`postbox.mailbox.delivery.hooks.on_fetch` in the same transaction (a citizen's
  first retrieval of an authority message becomes a signed ``retrieved`` event).
* **Changing** an entry: ``folder`` (``sent`` only for the mailbox's own messages,
  ``inbox`` only for received ones; any change of folder stamps ``moved``, from which the
  trash purge counts), ``read`` (the first time it was read is kept) and ``flagged``.
  State is per mailbox, so a team's members share it.
* **Deleting** removes this mailbox's entry; when no entry is left the message goes with
  its blob links and blob rows (the blobs feature's collector removes the files).
* **Retention** per organisation (``GET`` for the organisation's accounts, ``PUT`` for its
  admins): ``delete_after_days`` (null keeps messages) deletes the organisation's
  exchanges (``messages.org_id``) that many days after they were accepted, from every
  mailbox holding them; ``trash_days`` purges an entry that long after it was moved to
  the trash of one of the organisation's mailboxes (teams, and accounts of the
  organisation). Without a rule: keep, and purge the trash after 30 days.
  The collector (:mod:`postbox.mailbox.inbox.retention`) applies both.

State changes append ``mailbox`` live events (``{"mailbox"}``) for the accounts that read
the mailbox, in the same transaction; the bus is woken after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.crypto import shapes
from postbox.crypto.encoding import MAX_SAFE_INTEGER, b64d, b64e
from postbox.crypto.errors import CryptoError
from postbox.mailbox.access import Principal
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.delivery import hooks as delivery_hooks
from postbox.mailbox.errors import BadRequest, Conflict, NotFound
from postbox.mailbox.events import store as event_store
from postbox.mailbox.events.store import NewEvent
from postbox.mailbox.http import check_shape, malformed
from postbox.mailbox.inbox import store
from postbox.mailbox.inbox.store import FOLDERS, EntryRow, Filter
from postbox.mailbox.mailboxes.store import accounts_behind, acting_for, may_act_for
from postbox.mailbox.orgs.service import existing_org, require_admin, require_member

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
CURSOR_BYTES: Final = 8
#: the rule of an organisation that has not set one
DEFAULT_TRASH_DAYS: Final = 30
MAX_DAYS: Final = 36_500

Wake = Callable[[Collection[str]], Awaitable[None]]
Chain = Callable[[str], Awaitable[dict[str, Any]]]


def mailbox_not_found() -> NotFound:
    return NotFound("no such mailbox", code="mailbox-not-found")


def message_not_found() -> NotFound:
    """The one answer for a message the caller cannot see (whatever the reason)."""
    return NotFound("no such message in this mailbox", code="message-not-found")


def is_id(value: str) -> bool:
    try:
        shapes.ID(value, "id")
    except CryptoError:
        return False
    return True


# --- cursors ---------------------------------------------------------------------------------
def encode_cursor(pk: int) -> str:
    return b64e(pk.to_bytes(CURSOR_BYTES, "big"))


def decode_cursor(text: str) -> int:
    """The entry key of a cursor; anything this server did not make is ``invalid-cursor``."""
    try:
        pk = int.from_bytes(b64d(text, CURSOR_BYTES), "big")
    except CryptoError as exc:
        raise BadRequest("before: not a cursor of this server", code="invalid-cursor") from exc
    if not 1 <= pk <= MAX_SAFE_INTEGER:  # keys are positive and fit every integer type
        raise BadRequest("before: not a cursor of this server", code="invalid-cursor")
    return pk


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """What a listing shows of one message (metadata only; the content is encrypted)."""

    from_id: str
    id: str
    signer: str
    kind: str
    thread: str | None
    case: str | None
    accepted: int
    size: int
    blobs: int
    read: bool
    flagged: bool
    folder: str

    @classmethod
    def of(cls, row: EntryRow, blobs: int) -> Summary:
        return cls(
            row.from_id,
            row.id,
            row.signer_id,
            row.kind,
            row.thread_id,
            row.case_id,
            row.accepted,
            row.size,
            blobs,
            row.read is not None,
            row.flagged,
            row.folder,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.from_id,
            "id": self.id,
            "signer": self.signer,
            "kind": self.kind,
            "thread": self.thread,
            "case": self.case,
            "accepted": self.accepted,
            "size": self.size,
            "blobs": self.blobs,
            "read": self.read,
            "flagged": self.flagged,
            "folder": self.folder,
        }


@dataclass(frozen=True)
class MailboxView:
    mailbox: str
    kind: str  # account | team
    names: dict[str, str] | None
    unread: dict[str, int]
    total: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "kind": self.kind,
            "names": self.names,
            "unread": self.unread,
            "total": self.total,
        }


@dataclass(frozen=True)
class Page:
    messages: list[Summary]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"messages": [s.to_json() for s in self.messages], "next": self.next}


@dataclass(frozen=True)
class Fetched:
    """One message for one mailbox. ``wire`` is the stored canonical envelope (bytes)."""

    wire: bytes
    key: dict[str, Any]
    receipt: dict[str, Any]
    summary: Summary
    sender: dict[str, Any]


@dataclass(frozen=True)
class ListQuery:
    filter: Filter = field(default_factory=Filter)
    before: int | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, params: Iterable[tuple[str, str]]) -> ListQuery:
        """The listing's query parameters (each at most once; unknown ones refused)."""
        given: dict[str, str] = {}
        for name, value in params:
            if name not in ("folder", "unread", "flagged", "thread", "case", "limit", "before"):
                raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
            if name in given:
                raise BadRequest(f"{name} given twice", code="invalid-query")
            given[name] = value
        folder = given.get("folder")
        if folder is not None and folder not in FOLDERS:
            raise BadRequest(f"folder must be one of {', '.join(FOLDERS)}", code="invalid-query")
        for name in ("thread", "case"):
            if name in given and not is_id(given[name]):
                raise BadRequest(f"{name} must be an id", code="invalid-query")
        thread, case = given.get("thread"), given.get("case")
        if folder is None and thread is None and case is None:
            folder = "inbox"
        limit = DEFAULT_LIMIT
        if "limit" in given:
            text = given["limit"]
            if not (text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= 3):
                raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="invalid-query")
            limit = int(text)
            if limit > MAX_LIMIT:
                raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="invalid-query")
        before = decode_cursor(given["before"]) if "before" in given else None
        return cls(
            Filter(
                folder=folder,
                unread=_flag(given, "unread"),
                flagged=_flag(given, "flagged"),
                thread=thread,
                case=case,
            ),
            before,
            limit,
        )


def _flag(given: dict[str, str], name: str) -> bool | None:
    value = given.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false", code="invalid-query")
    return value == "true"


_CHANGE_SHAPES: Final = {
    "folder": shapes.enum(*FOLDERS),
    "read": shapes.enum_bool(),
    "flagged": shapes.enum_bool(),
}


@dataclass(frozen=True)
class Change:
    """``PATCH`` body: any of ``folder``, ``read``, ``flagged`` (at least one)."""

    folder: str | None = None
    read: bool | None = None
    flagged: bool | None = None

    @classmethod
    def from_json(cls, body: Any) -> Change:
        if not isinstance(body, dict):
            raise malformed("body: expected an object")
        unknown = sorted(k for k in body if k not in _CHANGE_SHAPES)
        if unknown:
            raise malformed("body: unknown " + ", ".join(map(repr, unknown)))
        if not body:
            raise malformed("body: give folder, read or flagged")
        for name, value in body.items():
            check_shape(_CHANGE_SHAPES[name], value, f"body.{name}")
        return cls(body.get("folder"), body.get("read"), body.get("flagged"))


@dataclass(frozen=True)
class Rule:
    delete_after_days: int | None
    trash_days: int

    def to_json(self) -> dict[str, Any]:
        return {"delete_after_days": self.delete_after_days, "trash_days": self.trash_days}

    @classmethod
    def from_json(cls, body: Any) -> Rule:
        check_shape(
            shapes.obj(
                {
                    "delete_after_days": shapes.nullable(shapes.integer(1, MAX_DAYS)),
                    "trash_days": shapes.integer(0, MAX_DAYS),
                }
            ),
            body,
            "body",
        )
        return cls(body["delete_after_days"], body["trash_days"])


DEFAULT_RULE: Final = Rule(None, DEFAULT_TRASH_DAYS)


# --- the service -------------------------------------------------------------------------------
class InboxService:
    """``app[INBOX]``: one transaction per call; live events woken after the commit."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        chain: Chain,
        wake: Wake,
        audit: Audit,
        receipt_seed: bytes,
    ) -> None:
        self._db = db
        self._clock = clock
        self._chain = chain
        self._wake = wake
        self._audit = audit
        self._receipt_seed = receipt_seed

    # --- reading ---------------------------------------------------------------------------
    async def mailboxes(self, who: Principal) -> list[MailboxView]:
        """Every mailbox the caller acts for (its own first), with counts per folder."""
        async with self._db.read() as conn:
            ids = await acting_for(conn, who.account_id)
            names = await store.team_names(conn, ids[1:])
            views = []
            for mailbox_id in ids:
                counts = await store.counts(conn, mailbox_id)
                team = mailbox_id in names
                views.append(
                    MailboxView(
                        mailbox_id,
                        "team" if team else "account",
                        names.get(mailbox_id),
                        counts.unread,
                        counts.total,
                    )
                )
            return views

    async def list(self, who: Principal, mailbox_id: str, query: ListQuery) -> Page:
        async with self._db.read() as conn:
            if not is_id(mailbox_id) or not await may_act_for(conn, who.account_id, mailbox_id):
                raise mailbox_not_found()
            rows = await store.list_entries(
                conn, mailbox_id, query.filter, before=query.before, limit=query.limit + 1
            )
            more = len(rows) > query.limit
            rows = rows[: query.limit]
            counts = await store.blob_counts(conn, [r.message_pk for r in rows])
        page = [Summary.of(r, counts.get(r.message_pk, 0)) for r in rows]
        return Page(page, encode_cursor(rows[-1].pk) if more else None)

    async def _entry(
        self,
        conn: AsyncConnection,
        who: Principal,
        mailbox_id: str,
        from_id: str,
        message_id: str,
        *,
        lock: bool = False,
    ) -> EntryRow:
        if not (is_id(mailbox_id) and is_id(from_id) and is_id(message_id)):
            raise message_not_found()
        if not await may_act_for(conn, who.account_id, mailbox_id):
            raise message_not_found()
        row = await store.entry(conn, mailbox_id, from_id, message_id, lock=lock)
        if row is None:
            raise message_not_found()
        return row

    async def fetch(
        self, who: Principal, mailbox_id: str, from_id: str, message_id: str
    ) -> Fetched:
        """One message for one mailbox (see the module rules)."""
        # A fetch through the caller's own mailbox of a message it did not send may be a
        # retrieval (legal delivery): then it is a write, so the record and the answer
        # stand or fall together. Every other fetch only reads.
        personal = mailbox_id == who.account_id and from_id != mailbox_id
        new: list[NewEvent] = []
        if personal:
            async with self._db.write() as conn:
                row, stored, blobs = await self._load(conn, who, mailbox_id, from_id, message_id)
                now = self._clock()
                new = await delivery_hooks.on_fetch(
                    conn,
                    message_pk=row.message_pk,
                    mailbox_id=mailbox_id,
                    reader_id=who.account_id,
                    at=now,
                    receipt_seed=self._receipt_seed,
                )
                await event_store.append(conn, new, now)
        else:
            async with self._db.read() as conn:
                row, stored, blobs = await self._load(conn, who, mailbox_id, from_id, message_id)
        if new:
            await self._wake({e.account_id for e in new})
        key = _keys_entry(stored.wire, mailbox_id)
        sender = await self._chain(row.signer_id)
        return Fetched(stored.wire, key, stored.receipt, Summary.of(row, blobs), sender)

    async def _load(
        self,
        conn: AsyncConnection,
        who: Principal,
        mailbox_id: str,
        from_id: str,
        message_id: str,
    ) -> tuple[EntryRow, store.Stored, int]:
        row = await self._entry(conn, who, mailbox_id, from_id, message_id)
        stored = await store.stored_message(conn, row.message_pk)
        if stored is None:  # pragma: no cover - the entry's foreign key keeps it
            raise message_not_found()
        blobs = (await store.blob_counts(conn, [row.message_pk])).get(row.message_pk, 0)
        return row, stored, blobs

    # --- changing --------------------------------------------------------------------------
    async def change(
        self, who: Principal, mailbox_id: str, from_id: str, message_id: str, cmd: Change
    ) -> Summary:
        """Move, mark read or unread, flag or unflag; returns the new summary."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await self._entry(conn, who, mailbox_id, from_id, message_id, lock=True)
            values: dict[str, Any] = {}
            if cmd.folder is not None and cmd.folder != row.folder:
                own = row.from_id == mailbox_id
                if (cmd.folder == "sent" and not own) or (cmd.folder == "inbox" and own):
                    raise Conflict(
                        f"this message cannot go to {cmd.folder}: sent holds the mailbox's "
                        "own messages, inbox the ones it received",
                        code="folder-not-allowed",
                    )
                values["folder"] = cmd.folder
                values["moved"] = now
            if cmd.read is True and row.read is None:
                values["read"] = now
            elif cmd.read is False and row.read is not None:
                values["read"] = None
            if cmd.flagged is not None and cmd.flagged != row.flagged:
                values["flagged"] = cmd.flagged
            readers: list[str] = []
            if values:
                await store.update_entry(conn, row.pk, values)
                readers = await announce(conn, [mailbox_id], now)
            row = await self._entry(conn, who, mailbox_id, from_id, message_id)
            blobs = (await store.blob_counts(conn, [row.message_pk])).get(row.message_pk, 0)
        if readers:
            await self._wake(readers)
        return Summary.of(row, blobs)

    async def delete(self, who: Principal, mailbox_id: str, from_id: str, message_id: str) -> None:
        """Remove the mailbox's entry; the message goes when no entry is left."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await self._entry(conn, who, mailbox_id, from_id, message_id)
            # the message lock first, like every deletion (see store.lock_messages)
            await store.lock_messages(conn, [row.message_pk])
            if not await store.delete_entry(conn, row.pk):
                raise message_not_found()
            await store.purge_orphans(conn, [row.message_pk])
            readers = await announce(conn, [mailbox_id], now)
        await self._wake(readers)

    # --- retention -------------------------------------------------------------------------
    async def retention(self, who: Principal, org_id: str) -> Rule:
        """The organisation's rule (for every account of the organisation)."""
        require_member(who, org_id)
        async with self._db.read() as conn:
            await existing_org(conn, org_id)
            row = await store.rule_of(conn, org_id)
        return DEFAULT_RULE if row is None else Rule(row.delete_after_days, row.trash_days)

    async def set_retention(self, who: Principal, org_id: str, rule: Rule) -> Rule:
        """Set the organisation's rule (its admins)."""
        require_admin(who, org_id)
        now = self._clock()
        async with self._db.write() as conn:
            await existing_org(conn, org_id)
            await store.put_rule(
                conn,
                store.RuleRow(org_id, rule.delete_after_days, rule.trash_days, now, who.account_id),
            )
            await self._audit.record(
                conn,
                action="retention.set",
                actor=who.account_id,
                subject=org_id,
                details=rule.to_json(),
                now=now,
            )
        return rule


async def announce(conn: AsyncConnection, mailbox_ids: Iterable[str], now: int) -> list[str]:
    """Append a ``mailbox`` event for every reader of these mailboxes (in the caller's
    transaction); returns the accounts to wake after the commit."""
    behind = await accounts_behind(conn, mailbox_ids)
    new = [
        NewEvent(account, "mailbox", {"mailbox": mailbox})
        for mailbox, accounts in sorted(behind.items())
        for account in accounts
    ]
    await event_store.append(conn, new, now)
    return sorted({e.account_id for e in new})


def _keys_entry(wire: bytes, mailbox_id: str) -> dict[str, Any]:
    """The ``keys`` entry of ``mailbox_id`` in a stored (already verified) envelope."""
    for entry in json.loads(wire)["keys"]:
        if entry["mailbox"] == mailbox_id:
            return dict(entry)
    raise RuntimeError("a stored envelope lacks a keys entry of one of its mailboxes")


__all__ = [
    "DEFAULT_RULE",
    "Change",
    "Fetched",
    "InboxService",
    "ListQuery",
    "MailboxView",
    "Page",
    "Rule",
    "Summary",
    "announce",
]
