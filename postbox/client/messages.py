"""Composing and sending messages (PROTOCOL.md §5, §8): ``client.messages``.

:meth:`Messages.send` (= :meth:`~Messages.compose` + :meth:`~Messages.post`):

1. **Keys.** Every recipient's and the sending mailbox's current encryption key comes from
   its chain in the transparency log, verified by :class:`~postbox.client.keys.KeyDirectory`
   (a team's key is certified by an org admin of its organisation; nothing the server says
   about keys is used unverified). The sender must hold the private key of its own mailbox
   (for a team: through its verified team wraps, ``client.teams.open_wraps``), so that the
   sent copy stays readable for it and its colleagues.
2. **Content.** ``subject``, ``body``, the ``form`` (with the verified procedure's digest),
   the attachments' manifest entries (uploaded with ``client.attachments`` or given as
   :class:`~postbox.client.attachments.AttachmentRef`), ``in_reply_to`` and ``sth``, the
   newest tree head this client verified (a recipient on another view of the log notices).
3. **Seal and post** the canonical envelope (``seal_message``). On ``409 stale-key`` (a key
   rotated between fetching and sending) the keys are fetched again and the *same message
   id* is sealed once more. After a network failure or ``503 send-retry`` the *same bytes*
   are posted again: the server answers a resend with the stored receipt, so a retry can
   never send twice.
4. **Receipt.** The submission receipt is verified offline with the pinned receipt key and
   the digest computed here (:func:`~postbox.crypto.receipts.verify_receipt_for`); a receipt
   for anything else is a :class:`~postbox.client.errors.VerificationFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from postbox.client.attachments import AttachmentRef, Attachments, Progress
from postbox.client.cases import Cases
from postbox.client.errors import (
    ClientError,
    ConflictError,
    ServerFailure,
    TransportError,
    UsageError,
)
from postbox.client.keyring import Keyring
from postbox.client.keys import KeyDirectory, verifying
from postbox.client.procedures import Procedures
from postbox.client.session import Session
from postbox.crypto.certs import Cert
from postbox.crypto.encoding import ID_BYTES, b64e
from postbox.crypto.envelope import Header, Kind, Sealed, seal_message
from postbox.crypto.primitives import random_bytes
from postbox.crypto.receipts import Receipt, SignedReceipt, verify_receipt_for

PATH: Final = "/api/v1/messages"
#: posts of the same bytes after a network failure or ``503 send-retry``
ATTEMPTS: Final = 4
#: pause before the 2nd, 3rd, 4th attempt (seconds; a server's Retry-After wins if longer)
BACKOFF_S: Final = (0.2, 1.0, 3.0)

Attachable = AttachmentRef | Path


def new_id() -> str:
    return b64e(random_bytes(ID_BYTES))


@dataclass(frozen=True)
class Outgoing:
    """A sealed message, ready to post — and to post again with the same bytes."""

    sealed: Sealed
    #: the plaintext content, kept (in memory only) to seal again after ``stale-key``
    content: dict[str, Any] = field(repr=False)
    procedure: str | None = None
    version: int | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    #: things the user should see before trusting the exchange (e.g. "rotation-pending:TEAM")
    warnings: tuple[str, ...] = ()

    @property
    def header(self) -> Header:
        return self.sealed.wire["header"]

    @property
    def id(self) -> str:
        return self.header["id"]

    @property
    def from_(self) -> str:
        return self.header["from"]


@dataclass(frozen=True)
class SentMessage:
    """A message the server accepted, with its verified submission receipt."""

    header: Header
    digest: bytes
    receipt: Receipt
    signed_receipt: SignedReceipt
    attachments: tuple[AttachmentRef, ...] = ()
    #: True when a ``stale-key`` answer made the client seal the message again
    resealed: bool = False
    #: the case's reference number, for an application that opened a case
    reference: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.header["id"]

    @property
    def from_(self) -> str:
        return self.header["from"]

    @property
    def thread(self) -> str | None:
        return self.header["thread"]

    @property
    def case(self) -> str | None:
        return self.header["case"]


class Messages:
    """``client.messages``: compose, seal, send, verify the receipt."""

    def __init__(
        self,
        session: Session,
        keys: KeyDirectory,
        attachments: Attachments,
        procedures: Procedures,
        cases: Cases,
    ) -> None:
        self.session = session
        self.keys = keys
        self.attachments = attachments
        self.procedures = procedures
        self.cases = cases

    # --- keys --------------------------------------------------------------------------------
    async def recipient_keys(
        self, keyring: Keyring, from_: str, to: Sequence[str]
    ) -> tuple[dict[str, Cert], tuple[str, ...]]:
        """Verified current encryption certificates of every mailbox of ``to`` and of
        ``from_``, and warnings (a team whose key must be rotated after a member left)."""
        now = self.session.clock()
        found: dict[str, Cert] = {}
        warnings: list[str] = []
        for mailbox in dict.fromkeys([*to, from_]):
            subject = await self.keys.subject(mailbox)
            with verifying(f"encryption key of {mailbox}"):
                found[mailbox] = subject.state.current_encryption(now)
            if subject.state.kind == "team" and subject.state.rotation_pending:
                warnings.append(f"rotation-pending:{mailbox}")
        own = found[from_]
        if from_ == keyring.account:
            held = {k.kid for k in keyring.encryption_keys}
        else:
            held = {k.kid for k in keyring.team_keys(from_)}
        if own["kid"] not in held:
            raise UsageError(
                f"this account does not hold the current key of {from_}: the sent copy would "
                "be unreadable (for a team, open its wraps first: client.teams.open_wraps)"
            )
        return found, tuple(warnings)

    async def _tree_head(self) -> dict[str, Any]:
        head = self.session.state.sth
        if head is None:
            head = await self.keys.tree_head()
        return {"size": head["size"], "root": head["root"]}

    # --- composing ---------------------------------------------------------------------------
    async def compose(
        self,
        keyring: Keyring,
        *,
        to: Sequence[str],
        subject: str = "",
        body: str = "",
        kind: Kind = "message",
        from_: str | None = None,
        thread: str | None = None,
        new_thread: bool = True,
        case: str | None = None,
        in_reply_to: str | None = None,
        attachments: Sequence[Attachable] = (),
        procedure: str | None = None,
        version: int | None = None,
        form: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        progress: Progress | None = None,
    ) -> Outgoing:
        """Upload what needs uploading, fetch and verify keys, seal (nothing is sent).

        ``thread``: the thread to write in; without one a new thread starts (its id is
        fresh), unless ``new_thread`` is False. An ``application`` without ``case`` gets a
        fresh case id (the server opens the case; ``procedure``/``version`` name its
        procedure). ``form`` is the form's data: it travels as ``{"procedure", "version",
        "digest", "data"}`` with the digest of the procedure verified here.
        """
        if not to:
            raise UsageError("a message goes to at least one mailbox")
        if (procedure is None) != (version is None):
            raise UsageError("procedure and version go together")
        sender = from_ or keyring.account
        refs = [await self._attachment(a, progress) for a in attachments]
        recipients, warnings = await self.recipient_keys(keyring, sender, to)
        form_entry = None
        if form is not None:
            form_entry = await self._form(form, procedure, version, to)
        if thread is None and new_thread:
            thread = new_id()
        if kind == "application" and case is None:
            case = new_id()
        content = {
            "subject": subject,
            "body": body,
            "format": "text",
            "form": form_entry,
            "attachments": [r.manifest() for r in refs],
            "in_reply_to": in_reply_to,
            "sth": await self._tree_head(),
        }
        sealed = self._seal(
            keyring,
            content,
            message_id=message_id or new_id(),
            kind=kind,
            from_=sender,
            to=to,
            recipients=recipients,
            thread=thread,
            case=case,
            blobs=[r.header_entry() for r in refs],
        )
        return Outgoing(sealed, content, procedure, version, tuple(refs), warnings)

    async def _attachment(self, item: Attachable, progress: Progress | None) -> AttachmentRef:
        if isinstance(item, AttachmentRef):
            return item
        path = Path(item)
        return await self.attachments.upload(path, name=path.name, progress=progress)

    async def _form(
        self,
        data: Mapping[str, Any],
        procedure: str | None,
        version: int | None,
        to: Sequence[str],
    ) -> dict[str, Any]:
        if procedure is None or version is None:
            raise UsageError("a form names its procedure and version")
        team = (await self.keys.subject(to[0])).state
        if team.kind != "team" or team.org is None:
            raise UsageError("a form goes to a team of the organisation that published it")
        verified = await self.procedures.fetch(team.org, procedure, version)
        return {
            "procedure": procedure,
            "version": version,
            "digest": b64e(verified.digest),
            "data": dict(data),
        }

    def _seal(
        self,
        keyring: Keyring,
        content: Mapping[str, Any],
        *,
        message_id: str,
        kind: Kind,
        from_: str,
        to: Sequence[str],
        recipients: Mapping[str, Cert],
        thread: str | None,
        case: str | None,
        blobs: Sequence[Mapping[str, Any]],
    ) -> Sealed:
        with verifying("the message"):
            return seal_message(
                content=content,
                message_id=message_id,
                kind=kind,
                from_=from_,
                signer=keyring.account,
                signer_seed=keyring.identity.seed,
                to=list(to),
                recipients=recipients,
                thread=thread,
                case=case,
                created=self.session.clock(),
                blobs=blobs,
            )

    # --- sending -----------------------------------------------------------------------------
    async def post(self, keyring: Keyring, outgoing: Outgoing) -> SentMessage:
        """Post a sealed message and verify its receipt (see the module docs)."""
        resealed = False
        try:
            answer = await self._post_same(outgoing)
        except ConflictError as exc:
            if exc.code != "stale-key":
                raise
            outgoing = await self._reseal(keyring, outgoing)
            resealed = True
            answer = await self._post_same(outgoing)
        h = outgoing.header
        with verifying("submission receipt"):
            receipt = verify_receipt_for(
                answer,
                self.session.receipt_pk,
                message=h["id"],
                from_=h["from"],
                digest=outgoing.sealed.digest,
            )
        reference = None
        if h["kind"] == "application" and h["case"] is not None:
            reference = await self._reference(h["case"])
        return SentMessage(
            header=h,
            digest=outgoing.sealed.digest,
            receipt=receipt,
            signed_receipt=cast(SignedReceipt, answer),
            attachments=outgoing.attachments,
            resealed=resealed,
            reference=reference,
            warnings=outgoing.warnings,
        )

    async def send(self, keyring: Keyring, **compose: Any) -> SentMessage:
        """:meth:`compose` (same arguments) and :meth:`post`."""
        return await self.post(keyring, await self.compose(keyring, **compose))

    async def _post_same(self, outgoing: Outgoing) -> Any:
        """Post the same bytes until an answer comes (network failures, ``send-retry``)."""
        params: dict[str, str | int] | None = None
        if outgoing.procedure is not None and outgoing.version is not None:
            params = {"procedure": outgoing.procedure, "version": outgoing.version}
        for attempt in range(ATTEMPTS):
            try:
                return await self.session.call("POST", PATH, outgoing.sealed.wire, params=params)
            except (TransportError, ServerFailure) as exc:
                if attempt == ATTEMPTS - 1 or not _retryable(exc):
                    raise
                await asyncio.sleep(max(BACKOFF_S[attempt], float(exc.retry_after or 0)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reseal(self, keyring: Keyring, outgoing: Outgoing) -> Outgoing:
        """The same message (same id, content, blobs) sealed to freshly fetched keys."""
        h = outgoing.header
        recipients, warnings = await self.recipient_keys(keyring, h["from"], h["to"])
        content = dict(outgoing.content, sth=await self._tree_head())
        sealed = self._seal(
            keyring,
            content,
            message_id=h["id"],
            kind=h["kind"],
            from_=h["from"],
            to=h["to"],
            recipients=recipients,
            thread=h["thread"],
            case=h["case"],
            blobs=h["blobs"],
        )
        return Outgoing(
            sealed,
            content,
            outgoing.procedure,
            outgoing.version,
            outgoing.attachments,
            warnings,
        )

    async def _reference(self, case: str) -> str | None:
        try:
            return (await self.cases.show(case)).reference
        except ClientError:
            return None  # the receipt stands; the reference can be looked up later


def _retryable(exc: ClientError) -> bool:
    return isinstance(exc, TransportError) or exc.code in ("send-retry", "unavailable")


__all__ = ["Messages", "Outgoing", "SentMessage", "new_id"]
