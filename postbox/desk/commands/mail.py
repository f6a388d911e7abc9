"""Mail commands: ``teams``, ``inbox``, ``read``, ``reply``, ``send``, ``save-attachments``,
``receipts``.

Messages are named ``FROM/ID`` (the sending mailbox and the message id, as the API names
them) or by a **handle**: the first 8 characters of the message id, as ``inbox`` prints
them. The desk remembers, for each handle it printed, which mailbox the message was listed
in (``handles/<server>/<login>.json`` in the state folder: ids only, no subjects); a
``FROM/ID`` it never listed is looked up in every mailbox the account reads (or in the one
``--team`` names).

The server sees only ciphertext; the desk does the reading: ``read`` fetches the envelope,
opens it with the account's (or the team's) key and runs every recipient check of
PROTOCOL.md §5 through the client library; it then says plainly who the verified sender
is, or names the check that failed (exit 3 when the failure looks like an attack).
Nothing of a message is shown before every check passed.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from postbox.client import Client
from postbox.client.cards import DASH, Card
from postbox.client.errors import (
    ClientError,
    ForbiddenError,
    NotFoundError,
    ProtocolViolation,
    ServerProblem,
    UsageError,
    VerificationFailed,
)
from postbox.client.inbox import Fetched, OpenedMessage, Refused, Summary
from postbox.client.keyring import Keyring
from postbox.client.state import write_private_file
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import Content, Header
from postbox.crypto.errors import ReceiptMismatch
from postbox.desk.context import EXIT_OK, Ctx, open_keyring
from postbox.desk.progress import Transfers, printable, progress_wanted

HANDLE_CHARS: Final = 8
#: handles remembered per login (the newest win)
MAX_HANDLES: Final = 2000
FOLDERS: Final = ("inbox", "sent", "archive", "trash")
MAX_BODY_FILE: Final = 8 * 1024 * 1024
MAX_FORM_FILE: Final = 1024 * 1024
SEND_KINDS: Final = ("message", "application", "info_request", "decision", "withdrawal")
REPLY_KINDS: Final = ("message", "info_request", "decision")


# --- small helpers ------------------------------------------------------------------------------
def when(ms: object) -> str:
    """A time for people (local date and minute) from Unix milliseconds."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def short(ident: str | None, n: int = HANDLE_CHARS) -> str:
    return "-" if ident is None else ident[:n]


def clip(text: str, n: int) -> str:
    """At most ``n`` characters, an ellipsis marking a cut."""
    return text if len(text) <= n else text[: n - 1] + "…"


def read_text_file(path: str, what: str, limit: int = MAX_BODY_FILE) -> str:
    """A UTF-8 text file (``-``: standard input), at most ``limit`` bytes."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path} is not UTF-8 text") from exc


def attachment_paths(paths: Sequence[str] | None) -> list[Path]:
    out = []
    for p in paths or ():
        path = Path(p)
        if not path.is_file():
            raise UsageError(f"attachment {p}: not a readable file")
        out.append(path)
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise UsageError("two attachments have the same file name")
    return out


def media_type(path: Path) -> str:
    """The attachment's media type for the encrypted manifest, guessed from its name."""
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or "application/octet-stream"


# --- message references and handles ---------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """A message: its sending mailbox and id, and the mailbox it was listed in (if known)."""

    from_: str
    id: str
    mailbox: str | None = None

    @property
    def path(self) -> str:
        return f"{self.from_}/{self.id}"

    @property
    def handle(self) -> str:
        return self.id[:HANDLE_CHARS]


class Handles:
    """The handles this desk printed for one server and login (see the module docs)."""

    def __init__(self, ctx: Ctx, client: Client) -> None:
        state_file = client.session.store.path_for(client.origin, client.session.state.login)
        self.path = ctx.root / "handles" / state_file.parent.name / state_file.name
        self._items: dict[str, dict[str, str]] | None = None

    def _load(self) -> dict[str, dict[str, str]]:
        if self._items is None:
            try:
                value = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                value = {}
            self._items = {
                k: v
                for k, v in (value.items() if isinstance(value, dict) else [])
                if isinstance(v, dict)
                and all(isinstance(v.get(f), str) for f in ("from", "id", "mailbox"))
            }
        return self._items

    def remember(self, refs: Sequence[Ref]) -> None:
        items = self._load()
        for ref in refs:
            if ref.mailbox is None:
                continue
            items.pop(ref.id, None)  # re-insert: the newest come last
            items[ref.id] = {"from": ref.from_, "id": ref.id, "mailbox": ref.mailbox}
        while len(items) > MAX_HANDLES:
            items.pop(next(iter(items)))
        write_private_file(self.path, json.dumps(items, sort_keys=False).encode("utf-8"))

    def resolve(self, text: str) -> Ref:
        """``FROM/ID``, a full id or a handle (a prefix of an id this desk listed)."""
        items = self._load()
        if "/" in text:
            from_, _, msg = text.partition("/")
            if not from_ or not msg or "/" in msg:
                raise UsageError(f"{text!r} is not FROM/ID")
            known = items.get(msg)
            mailbox = known["mailbox"] if known and known["from"] == from_ else None
            return Ref(from_, msg, mailbox)
        matches = [v for k, v in items.items() if k.startswith(text)] if text else []
        if not matches:
            raise UsageError(
                f"unknown message {text!r}: give FROM/ID or a handle `postbox-desk inbox` printed"
            )
        if len({m["id"] for m in matches}) > 1:
            raise UsageError(f"handle {text!r} is ambiguous: give more characters or FROM/ID")
        m = matches[-1]
        return Ref(m["from"], m["id"], m["mailbox"])


# --- opening a session -----------------------------------------------------------------------
@dataclass
class Desk:
    """One command's connection: the client, and the keyring once opened."""

    ctx: Ctx
    client: Client
    keyring: Keyring | None = None
    _mailboxes: list[dict[str, Any]] | None = None

    @property
    def account(self) -> str:
        return self.client.session.require_account()

    async def keys(self) -> Keyring:
        if self.keyring is None:
            self.keyring = await open_keyring(self.ctx, self.client)
        return self.keyring

    async def mailboxes(self) -> list[dict[str, Any]]:
        """``GET /api/v1/mailboxes``: every mailbox this account reads (own, teams)."""
        if self._mailboxes is None:
            self._mailboxes = [
                {
                    "mailbox": m.mailbox,
                    "kind": m.kind,
                    "names": m.names,
                    "unread": m.unread,
                    "total": m.total,
                }
                for m in await self.client.inbox.mailboxes()
            ]
        return self._mailboxes

    async def team_keys(self, team: str) -> Keyring:
        """The keyring with this team's keys (opens new wraps, e.g. after a rotation)."""
        keyring = await self.keys()
        self.keyring = await self.client.teams.open_wraps(keyring, team)
        return self.keyring

    async def mailbox_arg(self, team: str | None) -> str:
        """The mailbox ``--team`` names (a team id or a name), else the own mailbox."""
        if team is None:
            return self.account
        teams = [m for m in await self.mailboxes() if m.get("kind") == "team"]
        for m in teams:
            if m["mailbox"] == team:
                return team
        folded = team.casefold()
        named = [
            m
            for m in teams
            if any(str(n).casefold() == folded for n in (m.get("names") or {}).values())
        ]
        if len(named) == 1:
            return str(named[0]["mailbox"])
        if len(named) > 1:
            raise UsageError(f"several of your teams are called {team!r}: give the team id")
        raise UsageError(f"you are not a member of a team {team!r} (see `postbox-desk teams`)")

    async def cards(self, mailboxes: Iterable[str]) -> dict[str, Card]:
        """The cards of those of ``mailboxes`` that are team mailboxes this account may see
        (one request for all; names are a convenience: a failure only warns)."""
        wanted = [m for m in mailboxes if m != self.account]
        try:
            return await self.client.cards.lookup(wanted)
        except (ServerProblem, ProtocolViolation) as exc:
            self.ctx.warn(f"team names are not available: {exc}")
            return {}

    async def labels(self, mailboxes: Iterable[str]) -> dict[str, str]:
        """The card label (``<organisation> - Team <team>``, an en dash) of each team mailbox among
        ``mailboxes`` that has a card; other mailboxes are absent."""
        return {m: card_label(c) for m, c in (await self.cards(mailboxes)).items()}

    async def names_of(self, mailbox: str) -> dict[str, str] | None:
        for m in await self.mailboxes():
            if m.get("mailbox") == mailbox:
                names = m.get("names")
                return dict(names) if isinstance(names, dict) else None
        return None


def card_label(card: Card, width: int | None = None) -> str:
    """A card's label for a terminal; to fit ``width`` the organisation's name is cut
    first (the team's name tells a person's mailboxes apart)."""
    org, team = printable(card.org_name()), f"Team {printable(card.team_name())}"
    full = f"{org} {DASH} {team}"
    if width is None or len(full) <= width:
        return full
    room = width - len(team) - 3
    if room >= 8:
        return f"{clip(org, room)} {DASH} {team}"
    return clip(team, width)


def team_label(names: dict[str, str] | None, team: str, language: str = "de") -> str:
    if names:
        name = names.get(language) or names.get("de") or next(iter(names.values()))
        return f"Team {printable(name)}"
    return f"Team {team}"


def summary_json(s: Summary) -> dict[str, Any]:
    return {
        "from": s.from_,
        "id": s.id,
        "signer": s.signer,
        "kind": s.kind,
        "thread": s.thread,
        "case": s.case,
        "accepted": s.accepted,
        "size": s.size,
        "blobs": s.blobs,
        "read": s.read,
        "flagged": s.flagged,
        "folder": s.folder,
    }


class MessageRefused(ClientError):
    """A message failed a recipient check (PROTOCOL.md §5): nothing of it is shown."""

    default_code = "message-refused"

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.describe(), code=refused.code)
        self.reason = refused.reason
        self.ref = f"{refused.from_}/{refused.id}"

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reason": self.reason, "ref": self.ref, "verified": False}


class MessageAlarm(MessageRefused):
    """A refusal that looks like an attack (a substituted key, a fork, a forged signature):
    a security alarm (exit 3)."""


# --- the message a command works on ---------------------------------------------------------
@dataclass
class Letter:
    """A message that passed every recipient check, and where it was read."""

    ref: Ref
    opened: OpenedMessage

    @property
    def mailbox(self) -> str:
        return self.opened.mailbox

    @property
    def header(self) -> Header:
        return self.opened.header

    @property
    def content(self) -> Content:
        return self.opened.opened.content

    @property
    def case(self) -> str | None:
        """The signed case (the header's), else the case the server filed it under."""
        return self.opened.case or self.opened.summary.case


async def locate(desk: Desk, ref: Ref, team: str | None) -> Fetched:
    """Fetch ``ref`` from the mailbox ``--team`` names, the one it was listed in, or the
    first mailbox of this account that holds it."""
    inbox = desk.client.inbox
    if team is not None or ref.mailbox is not None:
        mailbox = await desk.mailbox_arg(team) if team is not None else ref.mailbox
        assert mailbox is not None
        return await inbox.fetch(mailbox, ref.from_, ref.id)
    for m in await desk.mailboxes():
        try:
            return await inbox.fetch(m["mailbox"], ref.from_, ref.id)
        except NotFoundError:
            continue
    raise NotFoundError(f"no mailbox of yours holds the message {ref.path}", status=404)


async def open_letter(desk: Desk, ref: Ref, team: str | None) -> Letter:
    """Fetch, verify and decrypt; a refusal raises (exit 3 for an alarm, else 1)."""
    fetched = await locate(desk, ref, team)
    keyring = await desk.keys()
    result = await desk.client.inbox.verify(keyring, fetched)
    desk.keyring = result.keyring  # it may have gained team keys from new wraps
    if isinstance(result, Refused):
        raise (MessageAlarm if result.alarm else MessageRefused)(result)
    return Letter(Ref(ref.from_, ref.id, fetched.mailbox), result)


async def describe_sender(desk: Desk, letter: Letter) -> dict[str, Any]:
    """Who sent it, as verified: the team and the caseworker writing for it, or the person.

    The caseworker, the identity and the organisation's name (from its pinned org root) are
    verified; a team's name is what the server's card says (server metadata, shown with the
    team id), and without a verified org name the card's organisation name is shown.
    """
    sender = letter.opened.sender
    st = desk.client.session.state
    checked = st.verified.get(sender.account) == sender.identity["kid"]
    who = f"{sender.kind} {sender.account} (identity {sender.fingerprint})"
    names = org_names = None
    if sender.team is not None:
        card = (await desk.cards([sender.team])).get(sender.team)
        names = card.names if card is not None else await desk.names_of(sender.team)
        org_names = None if card is None else card.org_names
        team = team_label(names, sender.team)
        if names:
            team += f" (team {sender.team})"
        if sender.org_name:
            team += f" of {printable(sender.org_name)!r}"
        elif card is not None:
            team = f"{printable(card.org_name())} {DASH} {team}"
        text = f"{team}, signed by {who} (verified)"
    else:
        text = f"{who} (verified)"
    if checked:
        text += "; identity checked on this desk by activation code or fingerprint"
    return {
        "verified": True,
        "mailbox": letter.header["from"],
        "team": sender.team,
        "team_names": names,
        "org": sender.org,
        "org_names": org_names,
        "org_name": sender.org_name,
        "signer": sender.account,
        "signer_kind": sender.kind,
        "kid": sender.identity["kid"],
        "identity_fingerprint": sender.fingerprint,
        "identity_checked_here": checked,
        "text": text,
    }


def attachments_json(letter: Letter) -> list[dict[str, Any]]:
    return [
        {"name": a.name, "type": a.type, "size": a.size, "blob": a.blob}
        for a in letter.opened.attachments
    ]


async def references(desk: Desk, cases: set[str]) -> dict[str, str]:
    """Reference numbers of cases (server metadata); a case the caller cannot see is left out."""
    found = {}
    for case in sorted(cases):
        try:
            found[case] = (await desk.client.cases.show(case)).reference
        except (NotFoundError, ForbiddenError):
            continue
    return found


# --- teams --------------------------------------------------------------------------------------
async def cmd_teams(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        items = await desk.mailboxes()
    rows = []
    lines = []
    for m in items:
        unread = m.get("unread") or {}
        total = m.get("total") or {}
        row = {
            "mailbox": m["mailbox"],
            "kind": m.get("kind"),
            "names": m.get("names"),
            "unread": unread,
            "total": total,
        }
        rows.append(row)
        label = team_label(m.get("names"), m["mailbox"]) if m.get("kind") == "team" else "personal"
        lines.append(
            f"{m['mailbox']}  {label:<32} {unread.get('inbox', 0)} unread of "
            f"{total.get('inbox', 0)} in the inbox"
        )
    ctx.emit({"mailboxes": rows}, lines or ["No mailboxes."])
    return EXIT_OK


# --- inbox --------------------------------------------------------------------------------------
async def cmd_inbox(ctx: Ctx) -> int:
    a = ctx.args
    if a.folder not in FOLDERS:
        raise UsageError(f"--folder is one of {', '.join(FOLDERS)}")
    if not 1 <= a.limit <= 200:
        raise UsageError("--limit is 1…200")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        mailbox = await desk.mailbox_arg(a.team)
        page = await client.inbox.list(
            mailbox,
            folder=a.folder,
            unread=a.unread or None,
            case=a.case,
            thread=a.thread,
            limit=a.limit,
            before=a.before,
        )
        summaries = [summary_json(s) for s in page.messages]
        refs = [Ref(s["from"], s["id"], mailbox) for s in summaries]
        Handles(ctx, client).remember(refs)
        subjects: dict[str, str] = {}
        refused: dict[str, str] = {}
        if a.open:
            for ref in refs:
                try:
                    subjects[ref.id] = (await open_letter(desk, ref, None)).content["subject"]
                except MessageRefused as exc:
                    refused[ref.id] = exc.reason
                    ctx.warn(exc.detail)
        refs_by_case = await references(desk, {s["case"] for s in summaries if s["case"]})
        cards = await desk.cards(s["from"] for s in summaries)
    rows = []
    lines = [
        f"{'':1} {'HANDLE':<8}  {'RECEIVED':<16}  {'KIND':<12} {'FROM':<40} {'CASE':<20} ATT",
    ]
    for s, ref in zip(summaries, refs, strict=True):
        reference = refs_by_case.get(s["case"]) if s["case"] else None
        row = {**s, "handle": ref.handle, "ref": ref.path, "mailbox": mailbox}
        row["reference"] = reference
        card = cards.get(s["from"])
        row["from_label"] = None if card is None else card_label(card)
        if a.open:
            row["subject"] = subjects.get(ref.id)
            row["refused"] = refused.get(ref.id)
        rows.append(row)
        sender = short(s["from"], 22) if card is None else card_label(card, 40)
        mark = " " if s["read"] else "*"
        case = reference or short(s["case"], 20)
        line = (
            f"{mark} {ref.handle:<8}  {when(s['accepted']):<16}  {s['kind']:<12} "
            f"{sender:<40} {case:<20} {s['blobs']}"
        )
        if a.open:
            shown = subjects.get(ref.id)
            line += (
                f"  {printable(shown)}"
                if shown is not None
                else f"  [NOT VERIFIED: {refused[ref.id]}]"
            )
        lines.append(line)
    if not summaries:
        lines = [f"No messages in {a.folder}."]
    if page.next:
        lines.append(f"More: postbox-desk inbox --before {page.next}")
    ctx.emit({"mailbox": mailbox, "messages": rows, "next": page.next}, lines)
    return EXIT_OK


# --- read ---------------------------------------------------------------------------------------
async def cmd_read(ctx: Ctx) -> int:
    a = ctx.args
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        handles = Handles(ctx, client)
        letter = await open_letter(desk, handles.resolve(a.message), a.team)
        handles.remember([letter.ref])
        sender = await describe_sender(desk, letter)
        opened, header, content = letter.opened, letter.header, letter.content
        await client.inbox.mark_read(letter.mailbox, opened.from_, opened.id)
        receipt = None
        if opened.from_ != letter.mailbox and not a.no_receipt:
            sent = await client.receipts.send_read(
                await desk.keys(),
                from_=opened.from_,
                message=opened.id,
                digest=opened.digest,
                mailbox=letter.mailbox,
            )
            receipt = {"read": sent.read["read"], "countersigned": sent.countersign["received"]}
        case = letter.case
        reference = (await references(desk, {case})).get(case) if case else None
    if opened.receipt_problem:
        ctx.warn(f"the server's submission receipt does not verify: {opened.receipt_problem}")
    data = {
        "ref": letter.ref.path,
        "handle": letter.ref.handle,
        "mailbox": letter.mailbox,
        "from": opened.from_,
        "id": opened.id,
        "kind": opened.kind,
        "thread": opened.thread,
        "case": case,
        "reference": reference,
        "created": opened.created,
        "accepted": None if opened.receipt is None else opened.receipt["accepted"],
        "subject": content["subject"],
        "body": content["body"],
        "form": content["form"],
        "in_reply_to": content["in_reply_to"],
        "attachments": attachments_json(letter),
        "digest": b64e(opened.digest),
        "sender": sender,
        "receipt_verified": opened.receipt is not None,
        "read_receipt": receipt,
    }
    lines = [
        f"From:     {sender['text']}",
        f"Subject:  {printable(content['subject'])}",
        f"Kind:     {header['kind']}",
        f"Sent:     {when(header['created'])}",
        f"Message:  {letter.ref.path} (handle {letter.ref.handle})",
    ]
    if case:
        lines.append(f"Case:     {reference or case}")
    form = content["form"]
    if form is not None:
        lines.append(f"Form:     procedure {form['procedure']} version {form['version']}")
        for k, v in sorted((form.get("data") or {}).items()):
            lines.append(f"  {printable(str(k))}: {printable(json.dumps(v, ensure_ascii=False))}")
    for att in letter.opened.attachments:
        lines.append(f"Attached: {printable(att.name)} ({att.type}, {att.size} bytes)")
    lines += ["", printable(content["body"], multiline=True)]
    if receipt is not None:
        lines += ["", "A signed read receipt was sent to the sender."]
    ctx.emit(data, lines)
    return EXIT_OK


# --- sending --------------------------------------------------------------------------------
async def upload_all(desk: Desk, paths: Sequence[Path]) -> list[Any]:
    ctx = desk.ctx
    refs = []
    with Transfers(ctx.err, enabled=progress_wanted(ctx.err, as_json=ctx.json)) as bars:
        for path in paths:
            bar = bars.bar("upload", path.name, path.stat().st_size)
            refs.append(
                await desk.client.attachments.upload(
                    path, name=path.name, type=media_type(path), progress=bar
                )
            )
    return refs


@dataclass
class Outgoing:
    to: list[str]
    subject: str
    body: str
    kind: str
    from_: str | None
    thread: str | None = None
    case: str | None = None
    in_reply_to: str | None = None
    procedure: str | None = None
    version: int | None = None
    form: dict[str, Any] | None = None


async def send_outgoing(desk: Desk, out: Outgoing, attach: Sequence[Path]) -> dict[str, Any]:
    """Upload, seal, send, verify the receipt; the answer every sending command prints."""
    keyring = await desk.keys()
    if out.from_ is not None and out.from_ != desk.account:
        keyring = await desk.team_keys(out.from_)
    refs = await upload_all(desk, attach)
    sent = await desk.client.messages.send(
        keyring,
        to=out.to,
        subject=out.subject,
        body=out.body,
        kind=out.kind,
        from_=out.from_,
        thread=out.thread,
        case=out.case,
        in_reply_to=out.in_reply_to,
        attachments=refs,
        procedure=out.procedure,
        version=out.version,
        form=out.form,
    )
    ref = Ref(sent.header["from"], sent.header["id"], sent.header["from"])
    Handles(desk.ctx, desk.client).remember([ref])
    receipt = sent.receipt
    for warning in sent.warnings:
        kind, _, mailbox = warning.partition(":")
        if kind == "rotation-pending":
            desk.ctx.warn(f"team {mailbox}: a member left and its key awaits rotation")
        else:
            desk.ctx.warn(warning)
    return {
        "ref": ref.path,
        "handle": ref.handle,
        "from": sent.header["from"],
        "id": sent.header["id"],
        "kind": sent.header["kind"],
        "to": sent.header["to"],
        "thread": sent.header["thread"],
        "case": sent.case,
        "reference": sent.reference,
        "digest": b64e(sent.digest),
        "accepted": receipt["accepted"],
        "receipt_verified": True,
        "attachments": [{"name": r.name, "size": r.size, "blob": r.blob} for r in refs],
    }


def sent_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        f"Sent {data['kind']} {data['ref']} (handle {data['handle']}) to {', '.join(data['to'])}.",
        f"Submission receipt verified: accepted {when(data['accepted'])}.",
    ]
    if data.get("reference") or data.get("case"):
        lines.append(f"Case: {data.get('reference') or data['case']}")
    return lines


async def cmd_send(ctx: Ctx) -> int:
    a = ctx.args
    body = read_text_file(a.body_file, "--body-file")
    attach = attachment_paths(a.attach)
    form = None
    if a.form_file and not a.procedure:
        raise UsageError("--form-file goes with --procedure")
    if a.form_file:
        try:
            form = json.loads(read_text_file(a.form_file, "--form-file", MAX_FORM_FILE))
        except ValueError as exc:
            raise UsageError(f"--form-file: {exc}") from exc
        if not isinstance(form, dict):
            raise UsageError("--form-file holds one JSON object (the form's fields)")
    kind = a.kind or ("application" if a.procedure else "message")
    if kind == "application" and not a.procedure:
        raise UsageError("an application names its procedure (--procedure ID)")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        from_ = await desk.mailbox_arg(a.as_team) if a.as_team else None
        version = a.version
        if a.procedure and version is None:
            version = await newest_version(desk, a.to[0], a.procedure)
        out = Outgoing(
            to=list(a.to),
            subject=a.subject,
            body=body,
            kind=kind,
            from_=from_,
            thread=a.thread,
            case=a.case,
            procedure=a.procedure,
            version=version,
            form=form,
        )
        data = await send_outgoing(desk, out, attach)
    ctx.emit(data, sent_lines(data))
    return EXIT_OK


async def org_of_team(desk: Desk, team: str) -> str:
    """The organisation owning ``team``, from the team's verified chain in the log."""
    state = (await desk.client.keys.subject(team)).state
    if state.kind != "team" or state.org is None:
        raise UsageError(f"{team} is not a team mailbox")
    return state.org


async def newest_version(desk: Desk, team: str, procedure: str) -> int:
    """The newest published version of ``procedure`` of the organisation owning ``team``."""
    org = await org_of_team(desk, team)
    for verified in await desk.client.procedures.list(org):
        if verified.id == procedure:
            return verified.version
    raise UsageError(f"the organisation of {team} publishes no procedure {procedure}")


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith(("re:", "aw:")) else f"Re: {subject}"


async def reply_to(
    desk: Desk, letter: Letter, *, kind: str, subject: str | None, body: str, attach: list[Path]
) -> dict[str, Any]:
    header = letter.header
    mine = letter.mailbox
    # a follow-up on one's own message goes to the same people
    to = [m for m in header["to"] if m != mine] if header["from"] == mine else [header["from"]]
    if not to:
        raise UsageError("nobody to reply to")
    out = Outgoing(
        to=to,
        subject=subject or reply_subject(letter.content["subject"]),
        body=body,
        kind=kind,
        from_=mine if mine != desk.account else None,
        thread=header["thread"] or header["id"],
        case=letter.case,
        in_reply_to=header["id"],
    )
    return await send_outgoing(desk, out, attach)


async def cmd_reply(ctx: Ctx) -> int:
    a = ctx.args
    body = read_text_file(a.body_file, "--body-file")
    attach = attachment_paths(a.attach)
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        letter = await open_letter(desk, Handles(ctx, client).resolve(a.message), a.team)
        data = await reply_to(
            desk, letter, kind=a.kind, subject=a.subject, body=body, attach=attach
        )
    ctx.emit(data, sent_lines(data))
    return EXIT_OK


# --- attachments --------------------------------------------------------------------------------
async def cmd_save_attachments(ctx: Ctx) -> int:
    a = ctx.args
    folder = Path(a.dir)
    try:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"{folder}: {exc.strerror or exc}") from exc
    saved = []
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        letter = await open_letter(desk, Handles(ctx, client).resolve(a.message), a.team)
        with Transfers(ctx.err, enabled=progress_wanted(ctx.err, as_json=ctx.json)) as bars:
            for att in letter.opened.attachments:
                bar = bars.bar("download", att.name, att.blob_size)
                path = await client.attachments.save(att, folder, bar)
                saved.append((att.name, str(path), att.size))
    ctx.emit(
        {
            "ref": letter.ref.path,
            "saved": [{"name": n, "path": p, "size": size} for n, p, size in saved],
        },
        [f"Saved {printable(n)} as {printable(p)}." for n, p, _ in saved]
        or ["The message has no attachments."],
    )
    return EXIT_OK


# --- receipts -----------------------------------------------------------------------------------
async def cmd_receipts(ctx: Ctx) -> int:
    a = ctx.args
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        letter = await open_letter(desk, Handles(ctx, client).resolve(a.message), a.team)
        header = letter.header
        digest = letter.opened.digest
        receipt = letter.opened.receipt
        if receipt is None:  # checked by client.inbox against the pinned receipt key
            problem = letter.opened.receipt_problem or "no receipt"
            raise VerificationFailed("submission receipt", ReceiptMismatch(problem))
        submission = {"accepted": receipt["accepted"], "verified": True}
        delivery = await client.receipts.delivery(header["from"], header["id"], digest=digest)
        reads = await client.receipts.reads(header["from"], header["id"], digest=digest)
    record = delivery.record
    events = [
        {
            "event": e["delivery"]["event"],
            "at": e["delivery"]["at"],
            "by": e["delivery"]["by"],
        }
        for e in delivery.events
    ]
    read_rows = [
        {
            "reader": r.read["reader"],
            "mailbox": r.read["mailbox"],
            "read": r.read["read"],
            "received": r.countersign["received"],
            "verified": True,
        }
        for r in reads
    ]
    data = {
        "ref": letter.ref.path,
        "digest": b64e(digest),
        "submission": submission,
        "delivery": {
            "verified": record is not None,
            "events": events,
            "clock": delivery.clock,
        },
        "reads": read_rows,
    }
    lines = [
        f"Message {letter.ref.path}",
        f"Submission receipt (signed by the server over this envelope's digest): verified, "
        f"accepted {when(submission['accepted'])}.",
    ]
    if events:
        lines.append("Delivery record (signed, hash-chained): verified.")
        lines += [f"  {e['event']:<10} {when(e['at'])}  {e['by'] or ''}" for e in events]
    else:
        lines.append("Delivery record: none (only authority messages have one).")
    clock = delivery.clock
    if clock:
        deemed = clock.get("deemed")
        lines.append(
            f"Legal clock ({clock.get('rule')}, {clock.get('source')}; server metadata): "
            + (f"deemed notified on {deemed}" if deemed else "not deemed notified yet")
            + (f"; retrieval deadline {clock['deadline']}" if clock.get("deadline") else "")
            + ("; OVERDUE: use another channel" if clock.get("overdue") else "")
            + "."
        )
    for r in read_rows:
        lines.append(
            f"Read receipt: {r['reader']} read it {when(r['read'])} (signed, countersigned)."
        )
    if not read_rows:
        lines.append("Read receipts: none yet.")
    ctx.emit(data, lines)
    return EXIT_OK
