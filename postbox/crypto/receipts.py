"""Signed receipts and delivery records (PROTOCOL.md §8).

Four signed objects, each served as ``{<name>: {…}, "sig": b64, "kid": kid}``:

* **submission receipt** ``{"v","message","from","digest","accepted"}``, signed by the
  server receipt key over ``"postbox/v1/receipt" ‖ cj(receipt)``. It carries the same
  64-byte digest the sender signed, so it proves exactly what was received and when.
  :func:`verify_receipt_for` is the sender's check against its locally computed digest.
* **delivery events** ``{"v","message","digest","event","at","by","prev"}``, signed by the
  receipt key (``postbox/v1/delivery``) and hash-chained per message:
  ``prev = H(cj(previous event) ‖ its raw 64-byte signature)`` (BLAKE2b-256).
  :func:`verify_delivery_chain` checks a whole chain and summarises it for the legal clock.
* **read receipt** ``{"v","message","digest","mailbox","reader","sth","read"}``, signed by
  the reader's identity key (``postbox/v1/read``).
* **countersignature** ``{"v","read","received"}`` with ``read = H(cj(read) ‖ sig)``,
  signed by the receipt key (``postbox/v1/countersign``) when the read receipt arrives.

Every ``verify_*`` function takes the pinned key explicitly (never a key named by the
object itself), checks the closed shape, checks that ``kid`` is the kid derived from the
pinned key (:class:`KeyIdMismatch`), then the signature (:class:`BadSignature`). A wire
body given as ``bytes`` must be canonical JSON (:class:`NonCanonical`); a parsed object
is accepted as is (the HTTP edge already ran ``parse_canonical``).

**Delivery order rule** (a project decision; PROTOCOL.md §8 is silent). A chain starts with
exactly one ``available`` event with ``prev`` null; every later event links to the one
before it, names the same message and digest, and is not earlier than it. After
``available`` come ``notified`` and ``retrieved`` events in *either* order: notifications
leave through an asynchronous outbox (digests, retries), so a recipient who is online can
fetch a message before its notification mail is sent, and the legal rules need both
instants as they happened (e.g. § 9 OZG counts from provision "or first retrieval if
earlier"; § 41 (2a) VwVfG needs the retrieval and the notification). ``retrieved`` records
the *first* retrieval per account: ``by`` is that account (required), and at most one
``retrieved`` per ``by``. ``notified`` has ``by`` = the notified mailbox or null, at most one
per ``by`` value (a message to several mailboxes is notified once per mailbox). ``available``
has ``by`` = the submitting account or null. Anything else is :class:`BrokenChain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, cast, get_args

from postbox.crypto import domain, shapes
from postbox.crypto.certs import Cert, cert_pk
from postbox.crypto.encoding import (
    DIGEST_BYTES,
    KEY_BYTES,
    SIGNATURE_BYTES,
    b64d,
    b64e,
    cj,
    parse_canonical,
)
from postbox.crypto.errors import (
    BrokenChain,
    CertificateInvalid,
    KeyIdMismatch,
    MalformedObject,
    ReceiptMismatch,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import (
    H,
    check_sign_pk,
    equal,
    sign,
    signing_public_key,
    verify,
)

#: BLAKE2b-256 links between delivery events and from a countersignature to its read receipt
LINK_BYTES: Final = 32
#: RFC 9162 tree roots carried in a read receipt's ``sth``
ROOT_BYTES: Final = KEY_BYTES

DeliveryEventName = Literal["available", "notified", "retrieved"]
DELIVERY_EVENTS: Final = get_args(DeliveryEventName)

# ``from`` is a Python keyword, hence the functional form.
Receipt = TypedDict(
    "Receipt", {"v": int, "message": str, "from": str, "digest": str, "accepted": int}
)


class SignedReceipt(TypedDict):
    receipt: Receipt
    sig: str
    kid: str


class Delivery(TypedDict):
    v: int
    message: str
    digest: str
    event: DeliveryEventName
    at: int
    by: str | None
    prev: str | None


class SignedDelivery(TypedDict):
    delivery: Delivery
    sig: str
    kid: str


class SthRef(TypedDict):
    size: int
    root: str


class Read(TypedDict):
    v: int
    message: str
    digest: str
    mailbox: str
    reader: str
    sth: SthRef
    read: int


class SignedRead(TypedDict):
    read: Read
    sig: str
    kid: str


class Countersign(TypedDict):
    v: int
    read: str
    received: int


class SignedCountersign(TypedDict):
    countersign: Countersign
    sig: str
    kid: str


# --- shapes ------------------------------------------------------------------------------
V1 = shapes.const(1)
SIG = shapes.b64(SIGNATURE_BYTES)
DIGEST = shapes.b64(DIGEST_BYTES)
LINK = shapes.b64(LINK_BYTES)

RECEIPT_SHAPE = shapes.obj(
    {
        "v": V1,
        "message": shapes.ID,
        "from": shapes.ID,
        "digest": DIGEST,
        "accepted": shapes.TIME,
    }
)
SIGNED_RECEIPT_SHAPE = shapes.obj({"receipt": RECEIPT_SHAPE, "sig": SIG, "kid": shapes.KID})
DELIVERY_SHAPE = shapes.obj(
    {
        "v": V1,
        "message": shapes.ID,
        "digest": DIGEST,
        "event": shapes.enum(*DELIVERY_EVENTS),
        "at": shapes.TIME,
        "by": shapes.nullable(shapes.ID),
        "prev": shapes.nullable(LINK),
    }
)
SIGNED_DELIVERY_SHAPE = shapes.obj({"delivery": DELIVERY_SHAPE, "sig": SIG, "kid": shapes.KID})
#: the ``{"size","root"}`` tree-head reference of read receipts and message content
STH_REF_SHAPE = shapes.obj({"size": shapes.integer(1), "root": shapes.b64(ROOT_BYTES)})
READ_SHAPE = shapes.obj(
    {
        "v": V1,
        "message": shapes.ID,
        "digest": DIGEST,
        "mailbox": shapes.ID,
        "reader": shapes.ID,
        "sth": STH_REF_SHAPE,
        "read": shapes.TIME,
    }
)
SIGNED_READ_SHAPE = shapes.obj({"read": READ_SHAPE, "sig": SIG, "kid": shapes.KID})
COUNTERSIGN_SHAPE = shapes.obj({"v": V1, "read": LINK, "received": shapes.TIME})
SIGNED_COUNTERSIGN_SHAPE = shapes.obj(
    {"countersign": COUNTERSIGN_SHAPE, "sig": SIG, "kid": shapes.KID}
)


# --- helpers -----------------------------------------------------------------------------
def _wire(value: Any) -> Any:
    """A wire body as bytes must be canonical JSON; parsed objects pass through."""
    if isinstance(value, bytes | bytearray | memoryview):
        return parse_canonical(bytes(value))
    return value


def _check_digest(digest: bytes) -> str:
    if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise MalformedObject(f"digest must be {DIGEST_BYTES} bytes")
    return b64e(digest)


def _sign_object(name: str, label: bytes, body: Any, seed: bytes) -> dict[str, Any]:
    pk = signing_public_key(seed)
    return {name: body, "sig": b64e(sign(seed, label + cj(body))), "kid": derive_kid("sign", pk)}


def _verify_signed(signed: Mapping[str, Any], name: str, label: bytes, pk: bytes) -> None:
    """Kid first (names the pinned key?), then the signature."""
    check_sign_pk(pk)
    if signed["kid"] != derive_kid("sign", pk):
        raise KeyIdMismatch(f"{name} is signed by another key than the pinned one")
    verify(pk, label + cj(signed[name]), b64d(signed["sig"], SIGNATURE_BYTES))


# --- submission receipts -------------------------------------------------------------------
def make_receipt(*, message: str, from_: str, digest: bytes, accepted: int) -> Receipt:
    receipt: Receipt = {
        "v": 1,
        "message": message,
        "from": from_,
        "digest": _check_digest(digest),
        "accepted": accepted,
    }
    shapes.check(RECEIPT_SHAPE, receipt, "receipt")
    return receipt


def sign_receipt(receipt: Receipt, receipt_seed: bytes) -> SignedReceipt:
    """The server's side: sign a submission receipt with the receipt key."""
    shapes.check(RECEIPT_SHAPE, receipt, "receipt")
    return cast(SignedReceipt, _sign_object("receipt", domain.RECEIPT, receipt, receipt_seed))


def verify_receipt(signed: Any, receipt_pk: bytes) -> Receipt:
    """Verify a submission receipt under the pinned receipt key; return the receipt."""
    s = _wire(signed)
    shapes.check(SIGNED_RECEIPT_SHAPE, s, "signed receipt")
    _verify_signed(s, "receipt", domain.RECEIPT, receipt_pk)
    return cast(SignedReceipt, s)["receipt"]


def verify_receipt_for(
    signed: Any, receipt_pk: bytes, *, message: str, from_: str, digest: bytes
) -> Receipt:
    """The sender's check: the server receipted exactly the envelope it sent.

    ``digest`` is the 64-byte envelope digest the sender computed itself (PROTOCOL.md §5).
    A valid receipt for another message id, mailbox or digest raises
    :class:`ReceiptMismatch`.
    """
    expected = b64d(_check_digest(digest), DIGEST_BYTES)
    receipt = verify_receipt(signed, receipt_pk)
    same_digest = equal(b64d(receipt["digest"], DIGEST_BYTES), expected)
    if not same_digest or receipt["message"] != message or receipt["from"] != from_:
        raise ReceiptMismatch("the receipt is not for the envelope that was sent")
    return receipt


# --- delivery events -------------------------------------------------------------------------
def delivery_link(signed: SignedDelivery) -> bytes:
    """``H(cj(event) ‖ sig)``: what the next event's ``prev`` must be."""
    return H(cj(signed["delivery"]) + b64d(signed["sig"], SIGNATURE_BYTES), LINK_BYTES)


def sign_delivery(
    *,
    message: str,
    digest: bytes,
    event: DeliveryEventName,
    at: int,
    by: str | None,
    previous: SignedDelivery | None,
    receipt_seed: bytes,
) -> SignedDelivery:
    """The server's side: sign the next event of a message's delivery chain."""
    delivery = {
        "v": 1,
        "message": message,
        "digest": _check_digest(digest),
        "event": event,
        "at": at,
        "by": by,
        "prev": None if previous is None else b64e(delivery_link(previous)),
    }
    shapes.check(DELIVERY_SHAPE, delivery, "delivery")
    return cast(SignedDelivery, _sign_object("delivery", domain.DELIVERY, delivery, receipt_seed))


def verify_delivery(signed: Any, receipt_pk: bytes) -> Delivery:
    """Verify one delivery event (its signature only; chains: :func:`verify_delivery_chain`)."""
    s = _wire(signed)
    shapes.check(SIGNED_DELIVERY_SHAPE, s, "signed delivery")
    _verify_signed(s, "delivery", domain.DELIVERY, receipt_pk)
    return cast(SignedDelivery, s)["delivery"]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A verified delivery chain, summarised for the legal clock.

    ``notified`` maps the notified mailbox (or ``None``) to the time; ``retrieved`` maps
    each retrieving account to its first retrieval. ``head`` is the link the next event
    must carry as ``prev``.
    """

    message: str
    digest: bytes
    available: int
    notified: Mapping[str | None, int]
    retrieved: Mapping[str, int]
    events: tuple[Delivery, ...]
    head: bytes

    @property
    def first_notified(self) -> int | None:
        return min(self.notified.values(), default=None)

    @property
    def first_retrieved(self) -> int | None:
        return min(self.retrieved.values(), default=None)


def verify_delivery_chain(
    chain: Sequence[Any],
    receipt_pk: bytes,
    *,
    message: str | None = None,
    digest: bytes | None = None,
) -> DeliveryRecord:
    """Verify a message's whole delivery chain (signatures, links and the order rule).

    With ``message``/``digest`` (the receipted envelope), a chain about another message
    raises :class:`ReceiptMismatch`. Every break of the chain raises :class:`BrokenChain`.
    """
    if isinstance(chain, str | bytes) or len(chain) == 0:
        raise BrokenChain("a delivery chain has at least its 'available' event")
    events: list[Delivery] = []
    notified: dict[str | None, int] = {}
    retrieved: dict[str, int] = {}
    link = b""
    first_digest = b""
    for i, item in enumerate(chain):
        s = cast(SignedDelivery, _wire(item))
        d = verify_delivery(s, receipt_pk)
        this_digest = b64d(d["digest"], DIGEST_BYTES)
        if i == 0:
            if d["event"] != "available" or d["prev"] is not None:
                raise BrokenChain("a delivery chain starts with 'available' and no prev")
            first_digest = this_digest
        else:
            prev = events[-1]
            if d["prev"] is None or not equal(b64d(d["prev"], LINK_BYTES), link):
                raise BrokenChain(f"delivery event {i} does not link to the one before")
            if d["message"] != prev["message"] or not equal(this_digest, first_digest):
                raise BrokenChain(f"delivery event {i} is about another message")
            if d["at"] < prev["at"]:
                raise BrokenChain(f"delivery event {i} is earlier than the one before")
            if d["event"] == "available":
                raise BrokenChain("a message is made available once")
            if d["event"] == "notified":
                if d["by"] in notified:
                    raise BrokenChain("notified twice for the same mailbox")
                notified[d["by"]] = d["at"]
            else:
                if d["by"] is None:
                    raise BrokenChain("a retrieval names the retrieving account")
                if d["by"] in retrieved:
                    raise BrokenChain("only the first retrieval per account is recorded")
                retrieved[d["by"]] = d["at"]
        events.append(d)
        link = delivery_link(s)
    first = events[0]
    if message is not None and first["message"] != message:
        raise ReceiptMismatch("delivery chain of another message")
    if digest is not None and not equal(first_digest, b64d(_check_digest(digest), DIGEST_BYTES)):
        raise ReceiptMismatch("delivery chain of another envelope digest")
    return DeliveryRecord(
        message=first["message"],
        digest=first_digest,
        available=first["at"],
        notified=notified,
        retrieved=retrieved,
        events=tuple(events),
        head=link,
    )


# --- read receipts -----------------------------------------------------------------------------
def sign_read(
    *,
    message: str,
    digest: bytes,
    mailbox: str,
    reader: str,
    sth: SthRef,
    read: int,
    reader_seed: bytes,
) -> SignedRead:
    """The reader's side: sign that ``reader`` read ``message`` in ``mailbox`` at ``read``.

    ``sth`` is the newest tree head the reader verified (``{"size","root"}``).
    """
    body = {
        "v": 1,
        "message": message,
        "digest": _check_digest(digest),
        "mailbox": mailbox,
        "reader": reader,
        "sth": {"size": sth["size"], "root": sth["root"]},
        "read": read,
    }
    shapes.check(READ_SHAPE, body, "read")
    return cast(SignedRead, _sign_object("read", domain.READ, body, reader_seed))


def verify_read(signed: Any, reader_identity: Cert) -> Read:
    """Verify a read receipt under the reader's verified identity certificate.

    The certificate must be an identity (``use`` sign) of ``read.reader``. Whether it was
    current at ``read.read`` (log chain, revocations) is the caller's check, e.g.
    ``SubjectState.identity_valid_at`` of ``postbox.crypto.keystate``.
    """
    s = _wire(signed)
    shapes.check(SIGNED_READ_SHAPE, s, "signed read receipt")
    r = cast(SignedRead, s)["read"]
    if reader_identity["use"] != "sign" or reader_identity["subject"] != r["reader"]:
        raise CertificateInvalid("not the identity certificate of the reader")
    _verify_signed(s, "read", domain.READ, cert_pk(reader_identity))
    return r


def read_hash(signed: SignedRead) -> bytes:
    """``H(cj(read) ‖ sig)``: the countersignature's reference to a read receipt."""
    return H(cj(signed["read"]) + b64d(signed["sig"], SIGNATURE_BYTES), LINK_BYTES)


def sign_countersign(
    signed_read: SignedRead, *, received: int, receipt_seed: bytes
) -> SignedCountersign:
    """The server's side: countersign a read receipt on arrival."""
    shapes.check(SIGNED_READ_SHAPE, signed_read, "signed read receipt")
    body = {"v": 1, "read": b64e(read_hash(signed_read)), "received": received}
    shapes.check(COUNTERSIGN_SHAPE, body, "countersign")
    return cast(
        SignedCountersign, _sign_object("countersign", domain.COUNTERSIGN, body, receipt_seed)
    )


def verify_countersign(signed: Any, signed_read: Any, receipt_pk: bytes) -> Countersign:
    """Verify a countersignature under the pinned receipt key and bind it to ``signed_read``.

    ``signed_read`` is only hashed here; verify it with :func:`verify_read`. A valid
    countersignature of another read receipt raises :class:`ReceiptMismatch`.
    """
    s = _wire(signed)
    shapes.check(SIGNED_COUNTERSIGN_SHAPE, s, "signed countersign")
    _verify_signed(s, "countersign", domain.COUNTERSIGN, receipt_pk)
    r = _wire(signed_read)
    shapes.check(SIGNED_READ_SHAPE, r, "signed read receipt")
    cs = cast(SignedCountersign, s)["countersign"]
    if not equal(b64d(cs["read"], LINK_BYTES), read_hash(cast(SignedRead, r))):
        raise ReceiptMismatch("countersignature of another read receipt")
    return cs
