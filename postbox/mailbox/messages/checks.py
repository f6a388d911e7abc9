"""The server's acceptance rules for one envelope (PROTOCOL.md §5 "Server accepts"),
checked in Python against what a batch loaded with set-based reads.

:class:`BatchState` holds the database's answers for every item of a group-commit batch
plus what the batch's earlier items did (stored messages, used blobs, started threads), so
that the items of one batch behave exactly as if they were sent one after the other.
:func:`check` either refuses an item with its :class:`~postbox.mailbox.errors.PostboxError`
or returns the :class:`Plan` of what to write, and records the plan in the state.

Order of the checks (each refusal leaves nothing behind), and why in this order:

1. the stored ``(from, id)`` — a resend is answered before anything else, whatever its age;
2. the sender: a kind of account that sends, ``from`` one of its mailboxes, ``sender_kid``
   its current identity (org-certified for the team's org when ``from`` is a team);
3. ``created`` within ±5 minutes of the server clock;
4. the thread and every recipient: unknown, disabled and not-allowed recipients get the
   same ``404 unknown-recipient``, so nobody learns whether an account of another
   organisation exists;
5. each ``rcpt`` kid the mailbox's current key — only *after* step 4, so a ``stale-key``
   answer (which names the current kid) is given only about mailboxes the caller may write
   to;
6. every blob: another account's, unknown, incomplete, used and expired blobs get the same
   ``blob-unavailable``; the caller's own blob with another size or hash ``blob-mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from postbox.crypto.encoding import KEY_BYTES, b64d
from postbox.crypto.envelope import Header, Wire
from postbox.crypto.primitives import equal
from postbox.mailbox.auth.store import SessionState
from postbox.mailbox.errors import BadRequest, Conflict, Forbidden, NotFound, PostboxError
from postbox.mailbox.messages.store import BlobState, Box, CertState, StoredMessage, ThreadState

#: ``created`` may differ from the server's clock by this much (PROTOCOL.md §5)
CLOCK_SKEW_MS: Final = 5 * 60 * 1000
#: account kinds that send messages (admins manage and operators run; neither writes)
SENDER_KINDS: Final = frozenset({"citizen", "caseworker", "connector"})
#: account kinds that write for a team (protocol.md §5.8)
TEAM_WRITERS: Final = frozenset({"caseworker", "connector"})


# --- refusals ----------------------------------------------------------------------------------
def unknown_recipient(mailbox: str) -> NotFound:
    """The one answer for a recipient that does not exist, is disabled, or may not be
    written to by this sender (so nobody learns which)."""
    return NotFound(
        "no such recipient for this sender", code="unknown-recipient", extra={"mailbox": mailbox}
    )


def thread_not_found() -> NotFound:
    return NotFound("no such thread for this sender", code="thread-not-found")


def blob_unavailable(blob: str) -> BadRequest:
    """The one answer for a blob that is not the sender's own complete, unused upload."""
    return BadRequest(
        "no such complete, unused upload of the signer",
        code="blob-unavailable",
        extra={"blob": blob},
    )


def message_id_reused() -> Conflict:
    return Conflict(
        "this message id of this mailbox is taken by another envelope", code="message-id-reused"
    )


# --- state -------------------------------------------------------------------------------------
@dataclass
class BatchState:
    """What the checks need, for every item of a batch (see module docs)."""

    now: int
    stored: dict[tuple[str, str], StoredMessage]
    boxes: dict[str, Box]
    members: dict[str, set[str]]  # team → current members
    certs: dict[tuple[str, str], CertState]  # (subject, use) → newest logged
    blobs: dict[str, BlobState]
    threads: dict[str, ThreadState]
    wrote_to: set[tuple[str, str]]  # (citizen, org) pairs
    #: (from, id) → (digest, receipt) of messages accepted earlier in this batch
    accepted: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    used_blobs: set[str] = field(default_factory=set)
    #: the senders' sessions (the route leaves the session check to the batch)
    sessions: dict[str, SessionState] = field(default_factory=dict)


@dataclass(frozen=True)
class Resend:
    """The envelope is stored already with the same digest: answer its stored receipt."""

    receipt: bytes


@dataclass(frozen=True)
class Plan:
    """An accepted envelope: the facts the writes need."""

    header: Header
    org_id: str | None
    signer_kind: str
    from_is_team: bool
    #: thread to create (its id) or None; parties to add to the thread
    new_thread: bool
    new_parties: tuple[str, ...]
    blob_bytes: int
    #: the readers of each rcpt mailbox (account ids)
    readers: dict[str, tuple[str, ...]]


# --- the checks --------------------------------------------------------------------------------
def check(state: BatchState, wire: Wire, digest: bytes) -> Resend | Plan:
    """Refuse (raise) or accept one envelope whose signature the caller already verified.

    ``wire`` passed ``check_wire`` and its signature verified under the certificate
    ``sender_kid`` names, whose subject is ``signer`` = the caller.
    """
    h = wire["header"]
    key = (h["from"], h["id"])

    # 1. a resend (stored before, or earlier in this batch)
    earlier = state.accepted.get(key)
    if earlier is not None:
        if equal(earlier[0], digest):
            return Resend(earlier[1])
        raise message_id_reused()
    stored = state.stored.get(key)
    if stored is not None:
        if equal(stored.digest, digest):
            return Resend(stored.receipt.encode("utf-8"))
        raise message_id_reused()

    # 2. the sender
    signer = state.boxes.get(h["signer"])
    if signer is None or signer.is_team or not signer.active or signer.role not in SENDER_KINDS:
        raise Forbidden("this kind of account does not send messages", code="may-not-send")
    from_box = _sending_mailbox(state, h, signer)
    _check_sender_key(state, h, signer, from_box)

    # 3. the clock
    if abs(h["created"] - state.now) > CLOCK_SKEW_MS:
        raise BadRequest(
            "created is more than 5 minutes away from the server's clock",
            code="clock-skew",
            extra={"server_time": state.now},
        )

    # 4. the exchange's organisation, the thread and every recipient
    org_id = _exchange_org(state, h, signer)
    thread = _thread(state, h, org_id)
    _check_recipients(state, h, signer, org_id, thread)

    # 5. each rcpt kid is that mailbox's current key
    for entry in h["rcpt"]:
        _check_current_key(state, entry["mailbox"], entry["kid"])

    # 6. blobs
    blob_bytes = _check_blobs(state, h)

    plan = Plan(
        header=h,
        org_id=org_id,
        signer_kind=signer.role,
        from_is_team=from_box.is_team,
        new_thread=thread is None and h["thread"] is not None,
        new_parties=_new_parties(h, thread),
        blob_bytes=blob_bytes,
        readers={r["mailbox"]: _readers(state, r["mailbox"]) for r in h["rcpt"]},
    )
    _record(state, plan, org_id)
    return plan


def _sending_mailbox(state: BatchState, h: Header, signer: Box) -> Box:
    """``from``: the signer's own mailbox, or a team it is a current member of."""
    refused = Forbidden("the caller may not send as this mailbox", code="may-not-send-as")
    if h["from"] == h["signer"]:
        return signer
    box = state.boxes.get(h["from"])
    if box is None or not box.is_team or signer.role not in TEAM_WRITERS:
        raise refused
    if box.org_id != signer.org_id or h["signer"] not in state.members.get(box.id, set()):
        raise refused
    return box


def _check_sender_key(state: BatchState, h: Header, signer: Box, from_box: Box) -> None:
    """``sender_kid`` is the signer's current identity; for a team, org-certified by the
    team's organisation (a staff identity is logged only once its org root certified it,
    so a logged caseworker identity of that org is org-certified)."""
    current = state.certs.get((h["signer"], "sign"))
    if current is None or not current.identity_current():
        raise Conflict(
            "the signer has no current identity key", code="stale-sender-key", extra={"kid": None}
        )
    if current.kid != h["sender_kid"]:
        raise Conflict(
            "sender_kid is not the signer's current identity key",
            code="stale-sender-key",
            extra={"kid": current.kid},
        )
    if from_box.is_team and (current.org_id != from_box.org_id or current.kind not in TEAM_WRITERS):
        raise Forbidden(
            "the signer's identity is not certified by the team's organisation",
            code="may-not-send-as",
        )


def _exchange_org(state: BatchState, h: Header, signer: Box) -> str | None:
    """The organisation the exchange belongs to: the staff signer's, or for a citizen the
    organisation of the thread (when replying) or of its first recipient."""
    if signer.role != "citizen":
        return signer.org_id
    thread = state.threads.get(h["thread"]) if h["thread"] is not None else None
    if thread is not None and h["from"] in thread.parties:
        return thread.org_id
    for mailbox in h["to"]:
        box = state.boxes.get(mailbox)
        if mailbox != h["from"] and box is not None and box.is_team:
            return box.org_id
    return None


def _thread(state: BatchState, h: Header, org_id: str | None) -> ThreadState | None:
    """The existing thread (the sender must be one of its parties), or None for a new one
    (or no thread at all). A thread of other parties is ``thread-not-found``."""
    if h["thread"] is None:
        return None
    thread = state.threads.get(h["thread"])
    if thread is None:
        return None
    if h["from"] not in thread.parties or thread.org_id != org_id:
        raise thread_not_found()
    return thread


def _check_recipients(
    state: BatchState, h: Header, signer: Box, org_id: str | None, thread: ThreadState | None
) -> None:
    """Who may write to whom (see docs/protocol.md §13.9)."""
    for mailbox in h["to"]:
        if mailbox == h["from"]:
            continue  # a copy to oneself is the sent copy
        box = state.boxes.get(mailbox)
        if box is None or not box.active or org_id is None:
            raise unknown_recipient(mailbox)
        in_thread = thread is not None and mailbox in thread.parties
        if signer.role == "citizen":
            # to teams of organisations that allow it, and into threads one belongs to;
            # never to another citizen
            allowed = box.role != "citizen" and (
                in_thread or (box.is_team and box.citizens_may_write)
            )
            allowed = allowed and box.org_id == org_id
        elif box.is_team:
            allowed = box.org_id == org_id
        elif box.role == "citizen":
            allowed = box.org_id == org_id or (mailbox, org_id) in state.wrote_to or in_thread
        else:
            allowed = False  # staff write to teams and citizens, not to persons of staff
        if not allowed:
            raise unknown_recipient(mailbox)


def _check_current_key(state: BatchState, mailbox: str, kid: str) -> None:
    box = state.boxes.get(mailbox)
    if box is None:  # pragma: no cover - rcpt = to + from, all checked above
        raise unknown_recipient(mailbox)
    if box.is_team:
        current = box.team_kid
    else:
        cert = state.certs.get((mailbox, "encrypt"))
        current = cert.kid if cert is not None and cert.encryption_usable(state.now) else None
    if current is None:
        raise Conflict(
            "the mailbox has no current encryption key",
            code="no-current-key",
            extra={"mailbox": mailbox},
        )
    if current != kid:
        raise Conflict(
            "sealed to a key that is not the mailbox's current encryption key",
            code="stale-key",
            extra={"mailbox": mailbox, "kid": current},
        )


def _check_blobs(state: BatchState, h: Header) -> int:
    total = 0
    for entry in h["blobs"]:
        blob = state.blobs.get(entry["id"])
        if (
            blob is None
            or blob.owner_id != h["signer"]
            or blob.state != "complete"
            or blob.used
            or blob.id in state.used_blobs
            or blob.hash is None
            or blob.expires is None
            or blob.expires <= state.now
        ):
            raise blob_unavailable(entry["id"])
        if blob.size != entry["size"] or not equal(blob.hash, b64d(entry["hash"], KEY_BYTES)):
            raise BadRequest(
                "the blob's size or hash is not the one the header states",
                code="blob-mismatch",
                extra={"blob": entry["id"]},
            )
        total += blob.size
    return total


def _new_parties(h: Header, thread: ThreadState | None) -> tuple[str, ...]:
    if h["thread"] is None:
        return ()
    mailboxes = [r["mailbox"] for r in h["rcpt"]]
    if thread is None:
        return tuple(mailboxes)
    return tuple(m for m in mailboxes if m not in thread.parties)


def _readers(state: BatchState, mailbox: str) -> tuple[str, ...]:
    """The accounts that read a mailbox: the account itself, or a team's current members."""
    box = state.boxes[mailbox]
    if box.is_team:
        return tuple(sorted(state.members.get(mailbox, set())))
    return (mailbox,)


def _record(state: BatchState, plan: Plan, org_id: str | None) -> None:
    """Make the batch's later items see this one as if it were committed already."""
    h = plan.header
    for entry in h["blobs"]:
        state.used_blobs.add(entry["id"])
    if h["thread"] is not None:
        thread = state.threads.setdefault(h["thread"], ThreadState(h["thread"], org_id, set()))
        thread.parties.update(plan.new_parties)
    if org_id is not None and plan.signer_kind == "citizen":
        state.wrote_to.add((h["from"], org_id))


def record_accepted(state: BatchState, key: tuple[str, str], digest: bytes, receipt: bytes) -> None:
    state.accepted[key] = (digest, receipt)


__all__ = [
    "BatchState",
    "Plan",
    "PostboxError",
    "Resend",
    "check",
    "record_accepted",
]
