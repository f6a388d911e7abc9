"""Receipts and delivery records on the client side (PROTOCOL.md §8).

Everything the server signs here is checked against the **pinned** receipt key
(``client.session.receipt_pk``, pinned at the first contact and endorsed by the org roots),
never against a key the answer names:

* :meth:`Receipts.verify_submission` — offline: a submission receipt proves that the server
  received exactly the envelope whose digest the sender computed itself, at ``accepted``.
* :meth:`Receipts.delivery` — fetch a message's delivery record and verify the whole chain
  (signatures, hash links, order rule, same message and digest). A server that drops,
  reorders or edits an event is caught here. The legal clock that comes with it is the
  server's computation (metadata): it is returned as served, next to the verified instants
  it was computed from.
* :meth:`Receipts.send_read` — sign a read receipt for an opened message with the reader's
  identity key (from the opened keyring) and check the server's countersignature.
* :meth:`Receipts.reads` — fetch read receipts, verify each reader's signature against that
  reader's identity from the verified key directory (valid at ``read``) and each
  countersignature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from postbox.client.errors import ProtocolViolation, VerificationFailed
from postbox.client.http import segment
from postbox.client.keyring import Keyring
from postbox.client.keys import KeyDirectory, verifying
from postbox.client.session import Session
from postbox.crypto.encoding import DIGEST_BYTES, b64d
from postbox.crypto.errors import CryptoError, ReceiptMismatch
from postbox.crypto.primitives import equal
from postbox.crypto.receipts import (
    Countersign,
    DeliveryRecord,
    Read,
    Receipt,
    SignedCountersign,
    SignedDelivery,
    SignedRead,
    SthRef,
    sign_read,
    verify_countersign,
    verify_delivery_chain,
    verify_read,
    verify_receipt_for,
)


@dataclass(frozen=True)
class DeliveryStatus:
    """A verified delivery chain (``None``: the message has no delivery record) and the
    server's legal-clock state (``None``: no rule applies)."""

    record: DeliveryRecord | None
    events: tuple[SignedDelivery, ...]
    clock: Mapping[str, Any] | None


@dataclass(frozen=True)
class VerifiedRead:
    """A read receipt whose signature and countersignature verified."""

    read: Read
    countersign: Countersign
    signed_read: SignedRead
    signed_countersign: SignedCountersign


def _message_path(from_: str, message: str) -> str:
    return f"/api/v1/messages/{segment(from_)}/{segment(message)}"


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolViolation(f"{what}: expected an object")
    return value


class Receipts:
    def __init__(self, session: Session, keys: KeyDirectory) -> None:
        self.session = session
        self.keys = keys

    # --- submission receipts ------------------------------------------------------------------
    def verify_submission(self, signed: Any, *, message: str, from_: str, digest: bytes) -> Receipt:
        """Offline: ``signed`` is the server's receipt for exactly this envelope (the
        sender's own ``digest``); returns the receipt (``accepted`` is the legal instant)."""
        with verifying("submission receipt"):
            return verify_receipt_for(
                signed, self.session.receipt_pk, message=message, from_=from_, digest=digest
            )

    # --- delivery records ---------------------------------------------------------------------
    def verify_delivery(
        self, events: Any, *, message: str, digest: bytes | None = None
    ) -> DeliveryRecord:
        """Offline: verify a served chain under the pinned receipt key."""
        with verifying("delivery record"):
            return verify_delivery_chain(
                events, self.session.receipt_pk, message=message, digest=digest
            )

    async def delivery(
        self, from_: str, message: str, *, digest: bytes | None = None
    ) -> DeliveryStatus:
        """Fetch and verify a message's delivery record (``digest``: the envelope digest the
        caller knows, from its own send or from the envelope it opened)."""
        answer = _object(
            await self.session.call("GET", _message_path(from_, message) + "/delivery"),
            "delivery record",
        )
        events, clock = answer.get("events"), answer.get("clock")
        if not isinstance(events, list) or not (clock is None or isinstance(clock, dict)):
            raise ProtocolViolation("delivery record: expected events and clock")
        if not events:
            if clock is not None:
                raise ProtocolViolation("a legal clock without a delivery record")
            return DeliveryStatus(None, (), None)
        record = self.verify_delivery(events, message=message, digest=digest)
        if clock is not None:
            self._check_clock(clock, record)
        return DeliveryStatus(record, tuple(cast(list[SignedDelivery], events)), clock)

    @staticmethod
    def _check_clock(clock: Mapping[str, Any], record: DeliveryRecord) -> None:
        """The clock's instants must be the verified chain's (a server cannot compute a
        deemed date from a retrieval its own signed record does not show)."""
        if clock.get("available") != record.available:
            raise ProtocolViolation("the legal clock's provision differs from the record")
        retrieved = clock.get("retrieved")
        if retrieved is not None and retrieved not in record.retrieved.values():
            raise ProtocolViolation("the legal clock's retrieval is not in the record")
        notified = clock.get("notified")
        if notified is not None and notified not in record.notified.values():
            raise ProtocolViolation("the legal clock's notification is not in the record")

    # --- read receipts ------------------------------------------------------------------------
    def verify_countersign(self, signed_countersign: Any, signed_read: Any) -> Countersign:
        """Offline: the server's countersignature of exactly this read receipt."""
        with verifying("countersignature"):
            return verify_countersign(signed_countersign, signed_read, self.session.receipt_pk)

    async def send_read(
        self,
        keyring: Keyring,
        *,
        from_: str,
        message: str,
        digest: bytes,
        mailbox: str,
        read_at: int | None = None,
    ) -> VerifiedRead:
        """Sign and send a read receipt for an opened message (``digest`` from the verified
        envelope; ``mailbox`` the recipient mailbox it was read in).

        The reader's identity seed comes from the opened keyring; ``sth`` is the newest
        tree head this client verified. A receipt the server kept earlier for the same
        (message, mailbox, reader) comes back instead; it is verified the same way.
        """
        head = await self.keys.tree_head()
        sth: SthRef = {"size": head["size"], "root": head["root"]}
        identity = keyring.identity
        signed = sign_read(
            message=message,
            digest=digest,
            mailbox=mailbox,
            reader=keyring.account,
            sth=sth,
            read=self.session.clock() if read_at is None else read_at,
            reader_seed=identity.seed,
        )
        answer = _object(
            await self.session.call("POST", _message_path(from_, message) + "/reads", signed),
            "read receipt",
        )
        pair = self._pair(answer)
        read = pair.read
        if (
            read["message"] != message
            or read["mailbox"] != mailbox
            or read["reader"] != keyring.account
            or not equal(b64d(read["digest"], DIGEST_BYTES), digest)
        ):
            raise VerificationFailed(
                "read receipt", ReceiptMismatch("the server answered another read receipt")
            )
        return pair

    def _pair(self, value: Any) -> VerifiedRead:
        """Countersignature checked; the read receipt's own signature is the caller's check
        (:meth:`reads` checks it against the reader's verified identity)."""
        pair = _object(value, "read receipt")
        signed_read, signed_cs = pair.get("read"), pair.get("countersign")
        countersign = self.verify_countersign(signed_cs, signed_read)
        read = cast(SignedRead, signed_read)["read"]
        return VerifiedRead(
            read, countersign, cast(SignedRead, signed_read), cast(SignedCountersign, signed_cs)
        )

    async def reads(
        self, from_: str, message: str, *, digest: bytes | None = None
    ) -> list[VerifiedRead]:
        """Fetch a message's read receipts; verify every countersignature and every
        reader's signature against that reader's identity valid at ``read`` (from the
        verified key directory)."""
        answer = _object(
            await self.session.call("GET", _message_path(from_, message) + "/reads"), "reads"
        )
        items = answer.get("reads")
        if not isinstance(items, list):
            raise ProtocolViolation("reads: expected a list")
        result = []
        for item in items:
            pair = self._pair(item)
            read = pair.read
            if read["message"] != message or (
                digest is not None and not equal(b64d(read["digest"], DIGEST_BYTES), digest)
            ):
                raise VerificationFailed(
                    "read receipt", ReceiptMismatch("a read receipt of another message")
                )
            reader = await self.keys.subject(read["reader"])
            try:
                cert = reader.state.identity_valid_at(pair.signed_read["kid"], read["read"])
                verify_read(pair.signed_read, cert)
            except CryptoError as exc:
                raise VerificationFailed("read receipt", exc) from exc
            result.append(pair)
        return result
