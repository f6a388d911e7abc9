"""Reading mail (PROTOCOL.md §5 "Recipient accepts"): ``client.inbox``.

Listing (:meth:`Inbox.mailboxes`, :meth:`Inbox.list`, :meth:`Inbox.iterate`) shows what the
server knows — metadata it may get wrong, never content. :meth:`Inbox.open` is where trust
is decided. It fetches the envelope and runs every recipient check of §5 in the protocol's
order through the crypto core (:func:`postbox.crypto.envelope.open_message_async`):

1. the mailbox is in ``to`` or is ``from``; exactly one ``rcpt`` entry names it, its
   ``keys`` entry names the same kid, and that kid is a key of this mailbox that the client
   holds *and* that the mailbox's verified chain in the log certifies — its own encryption
   keys from the keyring (retired ones too), a team's keys through verified team wraps
   (``client.teams.open_wraps``, fetched when a kid is missing). Anything else is a
   **key-substitution alarm**;
2. the signer's chain from the transparency log, verified by the client's
   :class:`~postbox.client.keys.KeyDirectory` (inclusion proofs against its own consistent
   tree head, org certification of staff against the pinned org root, the identity pinned
   for that signer: a change without a rotation link is a blocking **identity-changed**
   warning); ``sender_kid`` must be an identity of that chain valid at ``created`` (not
   expired, revoked or superseded then);
3. ``signer = from``, unless ``from`` is a team: then the team's verified chain names the
   organisation, which must be the caseworker's;
4. the signature, the key commitment, the AEAD, padding and canonical content;
5. the content's ``sth`` against the client's own verified tree head (advancing to a newer
   verified head, or demanding a consistency proof): anything inconsistent is a **fork
   alarm**.

The answer is an :class:`OpenedMessage` that says who the verified sender is (a citizen,
or a team and the verified caseworker writing for it), or a :class:`Refused` that says
exactly why not (``reason``, the crypto error ``code``, ``alarm``). Transport errors and
the server's problems (404…) are raised as usual. Messages are deduplicated on
``(from, id)``: the same pair with another digest is refused (``duplicate-id``). Show a
message under its *signed* ``thread`` and ``case`` (the header's), not the listing's.

Attachments are downloaded and decrypted by ``client.attachments``, which checks length,
hash and framing before any plaintext is released (:meth:`Inbox.save_attachment`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from postbox.client.attachments import Attachments, Progress
from postbox.client.errors import (
    ClientError,
    KeyAlarm,
    NotFoundError,
    ProtocolViolation,
    UsageError,
    VerificationFailed,
)
from postbox.client.http import segment
from postbox.client.keyring import Keyring
from postbox.client.keys import KeyDirectory, cert_fingerprint
from postbox.client.session import Session
from postbox.client.teams import Teams
from postbox.crypto import shapes
from postbox.crypto.certs import Cert
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import (
    KINDS,
    Attachment,
    Header,
    Opened,
    Wire,
    check_wire,
    open_message_async,
    wire_digest,
)
from postbox.crypto.errors import (
    CertificateInvalid,
    CryptoError,
    ForkDetected,
    KeySubstitution,
    NotARecipient,
)
from postbox.crypto.primitives import equal
from postbox.crypto.receipts import Receipt, verify_receipt_for
from postbox.crypto.transparency import TreeHead, compare_heads, consistency_path

FOLDERS: Final = ("inbox", "sent", "archive", "trash")
Folder = Literal["inbox", "sent", "archive", "trash"]

#: crypto error (and client alarm) → (reason, alarm). An alarm is what an attack looks like:
#: show it loudly; never offer to open the message anyway.
REASONS: Final[Mapping[str, tuple[str, bool]]] = {
    "KeySubstitution": ("key-substitution", True),
    "KeyAlarm": ("key-substitution", True),
    "ForkDetected": ("fork", True),
    "IdentityChanged": ("identity-changed", True),
    "BadSignature": ("bad-signature", True),
    "KeyCommitmentMismatch": ("key-commitment", True),
    "DecryptionFailed": ("decryption-failed", True),
    "BadProof": ("key-log", True),
    "BrokenChain": ("key-log", True),
    "KeyIdMismatch": ("key-log", True),
    "OrgCertificationMissing": ("org-certification", True),
    "CertificateInvalid": ("sender-certificate", True),
    "CertificateRevoked": ("sender-revoked", False),
    "CertificateExpired": ("sender-expired", False),
    "StaleTreeHead": ("stale-tree-head", False),
    "NotARecipient": ("not-a-recipient", False),
    "MalformedEnvelope": ("malformed", True),
    "MalformedObject": ("malformed", True),
    "NonCanonical": ("malformed", True),
    "EncodingError": ("malformed", True),
    "BadPadding": ("malformed", True),
    "InvalidKey": ("malformed", True),
}


# --- what the server says (metadata, unverified) ------------------------------------------------
def _need(shape: shapes.Shape, value: Any, what: str) -> None:
    try:
        shapes.check(shape, value, what)
    except CryptoError as exc:
        raise ProtocolViolation(f"{what}: {exc}") from exc


_COUNTS = shapes.obj({f: shapes.COUNT for f in FOLDERS})
_MAILBOX = shapes.obj(
    {
        "mailbox": shapes.ID,
        "kind": shapes.enum("account", "team"),
        "names": shapes.nullable(shapes.free_object),
        "unread": _COUNTS,
        "total": _COUNTS,
    }
)
_SUMMARY = shapes.obj(
    {
        "from": shapes.ID,
        "id": shapes.ID,
        "signer": shapes.ID,
        "kind": shapes.enum(*KINDS),
        "thread": shapes.nullable(shapes.ID),
        "case": shapes.nullable(shapes.ID),
        "accepted": shapes.TIME,
        "size": shapes.COUNT,
        "blobs": shapes.COUNT,
        "read": shapes.enum_bool(),
        "flagged": shapes.enum_bool(),
        "folder": shapes.enum(*FOLDERS),
    }
)
_PAGE = shapes.obj({"messages": shapes.array(_SUMMARY), "next": shapes.nullable(shapes.string(64))})
_FETCHED = shapes.obj(
    {
        "wire": shapes.free_object,
        "key": shapes.free_object,
        "receipt": shapes.free_object,
        "summary": _SUMMARY,
        "sender": shapes.free_object,
    }
)
_RULE = shapes.obj(
    {
        "delete_after_days": shapes.nullable(shapes.integer(1)),
        "trash_days": shapes.integer(0),
    }
)


@dataclass(frozen=True)
class MailboxInfo:
    """A mailbox the account acts for, with the server's counts per folder."""

    mailbox: str
    kind: str  # account | team
    names: dict[str, str] | None
    unread: dict[str, int]
    total: dict[str, int]

    @classmethod
    def from_json(cls, value: Any) -> MailboxInfo:
        _need(_MAILBOX, value, "mailbox")
        return cls(value["mailbox"], value["kind"], value["names"], value["unread"], value["total"])


@dataclass(frozen=True)
class Summary:
    """The server's metadata about a message in one mailbox (not verified by anyone)."""

    from_: str
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
    def from_json(cls, value: Any) -> Summary:
        _need(_SUMMARY, value, "message summary")
        return cls(
            value["from"],
            value["id"],
            value["signer"],
            value["kind"],
            value["thread"],
            value["case"],
            value["accepted"],
            value["size"],
            value["blobs"],
            value["read"],
            value["flagged"],
            value["folder"],
        )

    @property
    def ref(self) -> tuple[str, str]:
        return self.from_, self.id


@dataclass(frozen=True)
class Page:
    messages: tuple[Summary, ...]
    #: pass as ``before`` for the next page; None: this was the last one
    next: str | None


@dataclass(frozen=True)
class Fetched:
    """A message as the server served it, before any check."""

    mailbox: str
    from_: str
    id: str
    wire: dict[str, Any] = field(repr=False)
    key: dict[str, Any]
    receipt: dict[str, Any]
    summary: Summary
    sender: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Rule:
    """An organisation's retention rule."""

    delete_after_days: int | None
    trash_days: int


# --- what the client verified ---------------------------------------------------------------------
@dataclass(frozen=True)
class Sender:
    """The verified sender of a message."""

    #: the signing account, and its kind (citizen, caseworker, connector)
    account: str
    kind: str
    #: the identity certificate that signed, and its safety code
    identity: Cert = field(repr=False)
    fingerprint: str
    #: the team mailbox the caseworker wrote for (None: the account's own mailbox)
    team: str | None
    #: the organisation of a staff signer (and the name in its pinned, verified org root)
    org: str | None
    org_name: str | None

    def describe(self) -> str:
        """One line for people: who wrote this, as verified."""
        if self.team is None:
            return f"{self.kind} {self.account} (identity {self.fingerprint})"
        where = f" of {self.org_name!r}" if self.org_name else ""
        return (
            f"team {self.team}{where}, written by {self.kind} {self.account} "
            f"(identity {self.fingerprint})"
        )


@dataclass(frozen=True)
class OpenedMessage:
    """A message that passed every recipient check of PROTOCOL.md §5."""

    mailbox: str
    sender: Sender
    opened: Opened = field(repr=False)
    #: the server's metadata for this mailbox (folder, read, flagged; unverified)
    summary: Summary
    #: the verified submission receipt, or None with the reason in ``receipt_problem``
    receipt: Receipt | None
    receipt_problem: str | None
    #: the keyring to use from now on (it may have gained team keys from new wraps)
    keyring: Keyring = field(repr=False)
    ok: Literal[True] = True

    @property
    def header(self) -> Header:
        return self.opened.header

    @property
    def from_(self) -> str:
        return self.header["from"]

    @property
    def id(self) -> str:
        return self.header["id"]

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def thread(self) -> str | None:
        """The signed thread (show the message only under this one)."""
        return self.header["thread"]

    @property
    def case(self) -> str | None:
        """The signed case (show the message only under this one)."""
        return self.header["case"]

    @property
    def created(self) -> int:
        return self.header["created"]

    @property
    def digest(self) -> bytes:
        return self.opened.digest

    @property
    def subject(self) -> str:
        return self.opened.content["subject"]

    @property
    def body(self) -> str:
        return self.opened.content["body"]

    @property
    def form(self) -> dict[str, Any] | None:
        return self.opened.content["form"]

    @property
    def in_reply_to(self) -> str | None:
        return self.opened.content["in_reply_to"]

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return self.opened.attachments


@dataclass(frozen=True)
class Refused:
    """A message that failed a recipient check: nothing of its content is shown."""

    mailbox: str
    from_: str
    id: str
    #: a stable word: key-substitution, fork, identity-changed, bad-signature, ...
    reason: str
    #: the crypto error's name (``KeySubstitution``, ``ForkDetected``…) or the client's
    code: str
    detail: str
    #: what an attack looks like: show loudly, never offer to open it anyway
    alarm: bool
    summary: Summary | None
    keyring: Keyring = field(repr=False)
    ok: Literal[False] = False

    def describe(self) -> str:
        loud = "ALARM: " if self.alarm else ""
        return f"{loud}message {self.from_}/{self.id} NOT verified ({self.reason}): {self.detail}"


OpenResult = OpenedMessage | Refused


class _Refusal(Exception):
    """A client-side refusal that is not a crypto error (wrong message, duplicate id)."""

    def __init__(self, reason: str, code: str, detail: str, *, alarm: bool = True) -> None:
        super().__init__(detail)
        self.reason, self.code, self.detail, self.alarm = reason, code, detail, alarm


def _path(mailbox: str) -> str:
    return f"/api/v1/mailboxes/{segment(mailbox)}/messages"


def _message(mailbox: str, from_: str, message_id: str) -> str:
    return f"{_path(mailbox)}/{segment(from_)}/{segment(message_id)}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


class Inbox:
    """``client.inbox``: list, fetch, open and verify, move, mark, flag, delete."""

    def __init__(
        self, session: Session, keys: KeyDirectory, teams: Teams, attachments: Attachments
    ) -> None:
        self.session = session
        self.keys = keys
        self.teams = teams
        self.attachments = attachments
        #: (from, id) → digest of every message opened by this client (dedupe)
        self._seen: dict[tuple[str, str], bytes] = {}

    # --- listing ---------------------------------------------------------------------------
    async def mailboxes(self) -> list[MailboxInfo]:
        """Every mailbox this account acts for (its own first, then its teams)."""
        body = await self.session.call("GET", "/api/v1/mailboxes")
        _need(shapes.obj({"mailboxes": shapes.array(shapes.free_object)}), body, "mailboxes")
        return [MailboxInfo.from_json(m) for m in body["mailboxes"]]

    async def list(
        self,
        mailbox: str,
        *,
        folder: Folder | None = None,
        unread: bool | None = None,
        flagged: bool | None = None,
        thread: str | None = None,
        case: str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> Page:
        """One page, newest first. Without ``folder``: the inbox, or with ``thread`` or
        ``case`` every folder but the trash."""
        params: dict[str, str | int] = {}
        for name, value in (("folder", folder), ("thread", thread), ("case", case)):
            if value is not None:
                params[name] = value
        if unread is not None:
            params["unread"] = _flag(unread)
        if flagged is not None:
            params["flagged"] = _flag(flagged)
        if limit is not None:
            params["limit"] = limit
        if before is not None:
            params["before"] = before
        body = await self.session.call("GET", _path(mailbox), params=params or None)
        _need(_PAGE, body, "message page")
        return Page(tuple(Summary.from_json(m) for m in body["messages"]), body["next"])

    async def iterate(self, mailbox: str, **filters: Any) -> AsyncIterator[Summary]:
        """Every message of a listing, page after page, each ``(from, id)`` once."""
        seen: set[tuple[str, str]] = set()
        before = filters.pop("before", None)
        while True:
            page = await self.list(mailbox, before=before, **filters)
            for summary in page.messages:
                if summary.ref not in seen:
                    seen.add(summary.ref)
                    yield summary
            if page.next is None:
                return
            before = page.next

    # --- fetching and opening ---------------------------------------------------------------
    async def fetch(self, mailbox: str, from_: str, message_id: str) -> Fetched:
        """The message as the server serves it (nothing verified yet: see :meth:`open`)."""
        body = await self.session.call("GET", _message(mailbox, from_, message_id))
        _need(_FETCHED, body, "fetched message")
        return Fetched(
            mailbox,
            from_,
            message_id,
            body["wire"],
            body["key"],
            body["receipt"],
            Summary.from_json(body["summary"]),
            body["sender"],
        )

    async def open(self, keyring: Keyring, mailbox: str, from_: str, message_id: str) -> OpenResult:
        """Fetch, verify and decrypt one message (see the module docs for every check)."""
        return await self.verify(keyring, await self.fetch(mailbox, from_, message_id))

    async def verify(self, keyring: Keyring, fetched: Fetched) -> OpenResult:
        """Run every recipient check on a fetched message; decrypt only if all pass."""
        state: dict[str, Keyring] = {"keyring": keyring}
        try:
            return await self._verify(state, fetched)
        except _Refusal as exc:
            return self._refused(
                state["keyring"], fetched, exc.reason, exc.code, exc.detail, exc.alarm
            )
        except VerificationFailed as exc:
            return self._refused_by(state["keyring"], fetched, exc.cause, str(exc))
        except KeyAlarm as exc:
            return self._refused(
                state["keyring"], fetched, "key-substitution", "KeyAlarm", exc.detail, True
            )
        except NotFoundError as exc:
            # the signer or the sending team has no chain in the log
            return self._refused(
                state["keyring"], fetched, "unknown-sender", exc.code, exc.detail, True
            )
        except CryptoError as exc:
            return self._refused_by(state["keyring"], fetched, exc, str(exc))

    async def _verify(self, state: dict[str, Keyring], fetched: Fetched) -> OpenedMessage:
        mailbox = fetched.mailbox
        wire = check_wire(fetched.wire)
        header = wire["header"]
        if (header["from"], header["id"]) != (fetched.from_, fetched.id):
            raise _Refusal(
                "wrong-message", "WrongMessage", "the server answered with another message"
            )
        digest = wire_digest(wire)
        earlier = self._seen.get((fetched.from_, fetched.id))
        if earlier is not None and not equal(earlier, digest):
            raise _Refusal(
                "duplicate-id",
                "DuplicateId",
                "another message with this sender and id was opened before",
            )
        # 1. our rcpt entry, its keys entry, a certified key we hold (before anything else)
        kid = _own_kid(wire, mailbox)
        held, state["keyring"] = await self._held_keys(state["keyring"], mailbox, kid)
        if kid not in held:
            raise KeySubstitution("message sealed to a key this mailbox does not hold")
        # 2./3. the signer's verified chain, and the team it writes for
        sender, cert, revocations, team_org = await self._sender(header)
        opened = await open_message_async(
            wire,
            sth_check=self._check_sth,
            mailbox=mailbox,
            keys=held,
            sender=cert,
            revocations=revocations,
            sender_team_org=team_org,
        )
        receipt, problem = self._receipt(fetched, opened)
        self._seen[(fetched.from_, fetched.id)] = opened.digest
        return OpenedMessage(
            mailbox, sender, opened, fetched.summary, receipt, problem, state["keyring"]
        )

    async def _held_keys(
        self, keyring: Keyring, mailbox: str, kid: str
    ) -> tuple[dict[str, tuple[bytes, bytes]], Keyring]:
        """kid → (pk, sk) of the keys this account holds for ``mailbox`` that the mailbox's
        verified chain certifies (a team's wraps are fetched when ``kid`` is missing)."""
        if mailbox == keyring.account:
            mine = {k.kid: (k.pk, k.sk) for k in keyring.encryption_keys}
        else:
            if keyring.team_key(mailbox, kid) is None:
                keyring = await self.teams.open_wraps(keyring, mailbox)
            mine = {k.kid: (k.pk, k.sk) for k in keyring.team_keys(mailbox)}
        chain = (await self.keys.subject(mailbox)).state
        certified = {entry.cert["kid"] for entry in chain.encryption}
        return {k: v for k, v in mine.items() if k in certified}, keyring

    async def _sender(self, header: Header) -> tuple[Sender, Cert, tuple[Any, ...], str | None]:
        signer, from_ = header["signer"], header["from"]
        subject = await self.keys.subject(signer)
        state = subject.state
        if state.kind != "account":
            raise CertificateInvalid("the signer is not an account")
        cert = state.identity_valid_at(header["sender_kid"], header["created"])
        team: str | None = None
        team_org: str | None = None
        if from_ != signer:
            team_state = (await self.keys.subject(from_)).state
            if team_state.kind != "team":
                raise CertificateInvalid("from is neither the signer nor a team")
            team, team_org = from_, team_state.org
        org_name = None
        if subject.org is not None and subject.org.org_root is not None:
            org_name = subject.org.org_root["name"]
        sender = Sender(
            account=signer,
            kind=cert["kind"],
            identity=cert,
            fingerprint=cert_fingerprint(cert),
            team=team,
            org=cert["org"],
            org_name=org_name,
        )
        return sender, cert, tuple(state.revocations), team_org

    async def _check_sth(self, size: int, root: bytes) -> None:
        """The sender's tree head against this client's verified view (fork alarm)."""
        ref = {"size": size, "root": b64e(root)}
        own: TreeHead = self.session.state.sth or await self.keys.tree_head()
        verdict = compare_heads(ref, own)
        if verdict == "advance":
            own = await self.keys.tree_head()  # verified and consistent with the stored one
            verdict = compare_heads(ref, own)
            if verdict == "advance":
                raise ForkDetected("the sender saw a larger log than this server shows")
        if verdict == "need_proof":
            answer = await self.session.call(
                "GET",
                "/api/v1/transparency/consistency",
                auth=False,
                params={"first": size, "second": own["size"]},
            )
            compare_heads(ref, own, consistency_path(answer, size, own["size"]))

    def _receipt(self, fetched: Fetched, opened: Opened) -> tuple[Receipt | None, str | None]:
        """The submission receipt, checked against the pinned receipt key and the digest
        computed here (a bad one does not make the message untrustworthy: it was signed by
        its sender; the server is what misbehaves)."""
        try:
            receipt = verify_receipt_for(
                fetched.receipt,
                self.session.receipt_pk,
                message=opened.header["id"],
                from_=opened.header["from"],
                digest=opened.digest,
            )
        except CryptoError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return receipt, None

    def _refused_by(
        self, keyring: Keyring, fetched: Fetched, exc: CryptoError, detail: str
    ) -> Refused:
        name = type(exc).__name__
        reason, alarm = REASONS.get(name, ("verification-failed", True))
        return self._refused(keyring, fetched, reason, name, detail, alarm)

    @staticmethod
    def _refused(
        keyring: Keyring,
        fetched: Fetched,
        reason: str,
        code: str,
        detail: str,
        alarm: bool,
    ) -> Refused:
        return Refused(
            fetched.mailbox,
            fetched.from_,
            fetched.id,
            reason,
            code,
            detail,
            alarm,
            fetched.summary,
            keyring,
        )

    # --- attachments -------------------------------------------------------------------------
    async def save_attachment(
        self,
        message: OpenedMessage,
        which: int | Attachment,
        folder: Path,
        progress: Progress | None = None,
    ) -> Path:
        """Download, verify and decrypt one attachment into ``folder`` (made if missing),
        under its own name; an existing file is never replaced. Returns the saved path."""
        attachment = message.attachments[which] if isinstance(which, int) else which
        if attachment not in message.attachments:
            raise UsageError("not an attachment of this message")
        await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
        return await self.attachments.save(attachment, Path(folder), progress)

    async def save_attachments(
        self, message: OpenedMessage, folder: Path, progress: Progress | None = None
    ) -> tuple[Path, ...]:
        """Every attachment of the message into ``folder``."""
        saved = [
            await self.save_attachment(message, a, folder, progress) for a in message.attachments
        ]
        return tuple(saved)

    # --- changing ----------------------------------------------------------------------------
    async def change(
        self,
        mailbox: str,
        from_: str,
        message_id: str,
        *,
        folder: Folder | None = None,
        read: bool | None = None,
        flagged: bool | None = None,
    ) -> Summary:
        """Move, mark read or unread, flag or unflag (per mailbox; a team shares it)."""
        body: dict[str, Any] = {}
        if folder is not None:
            body["folder"] = folder
        if read is not None:
            body["read"] = read
        if flagged is not None:
            body["flagged"] = flagged
        if not body:
            raise UsageError("give a folder, read or flagged")
        answer = await self.session.call("PATCH", _message(mailbox, from_, message_id), body)
        return Summary.from_json(answer)

    async def move(self, mailbox: str, from_: str, message_id: str, folder: Folder) -> Summary:
        return await self.change(mailbox, from_, message_id, folder=folder)

    async def mark_read(
        self, mailbox: str, from_: str, message_id: str, read: bool = True
    ) -> Summary:
        return await self.change(mailbox, from_, message_id, read=read)

    async def flag(
        self, mailbox: str, from_: str, message_id: str, flagged: bool = True
    ) -> Summary:
        return await self.change(mailbox, from_, message_id, flagged=flagged)

    async def delete(self, mailbox: str, from_: str, message_id: str) -> None:
        """Remove the message from this mailbox (it goes for good when no mailbox holds it)."""
        await self.session.call("DELETE", _message(mailbox, from_, message_id))

    # --- retention -----------------------------------------------------------------------------
    async def retention(self, org: str) -> Rule:
        body = await self.session.call("GET", f"/api/v1/orgs/{segment(org)}/retention")
        _need(_RULE, body, "retention rule")
        return Rule(body["delete_after_days"], body["trash_days"])

    async def set_retention(
        self, org: str, *, delete_after_days: int | None, trash_days: int
    ) -> Rule:
        """An org admin's: delete the organisation's messages after ``delete_after_days``
        (None keeps them) and purge trash after ``trash_days``."""
        body = await self.session.call(
            "PUT",
            f"/api/v1/orgs/{segment(org)}/retention",
            {"delete_after_days": delete_after_days, "trash_days": trash_days},
        )
        _need(_RULE, body, "retention rule")
        return Rule(body["delete_after_days"], body["trash_days"])


def _own_kid(wire: Wire, mailbox: str) -> str:
    """Steps 1 and 2 of §5 before any network call: this mailbox is addressed, has exactly one
    ``rcpt`` entry, and its ``keys`` entry names the same kid."""
    header = wire["header"]
    if mailbox not in header["to"] and mailbox != header["from"]:
        raise NotARecipient("this mailbox is not a recipient of the message")
    entries = [r for r in header["rcpt"] if r["mailbox"] == mailbox]
    sealed = [k for k in wire["keys"] if k["mailbox"] == mailbox]
    if len(entries) != 1 or len(sealed) != 1 or sealed[0]["kid"] != entries[0]["kid"]:
        raise KeySubstitution("not exactly one rcpt and keys entry of this mailbox")
    return entries[0]["kid"]


__all__ = [
    "REASONS",
    "ClientError",
    "Fetched",
    "Inbox",
    "MailboxInfo",
    "OpenResult",
    "OpenedMessage",
    "Page",
    "Refused",
    "Rule",
    "Sender",
    "Summary",
]
