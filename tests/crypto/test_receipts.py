"""Submission receipts, delivery chains, read receipts and countersignatures (PROTOCOL.md §8)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.world import NOW, World

from postbox.crypto import errors, receipts
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, sign_keypair
from postbox.crypto.receipts import SignedDelivery

SERVER_SEED = hashlib.blake2b(b"test/receipts/server", digest_size=32).digest()
SERVER_PK, _ = sign_keypair(SERVER_SEED)
OTHER_SEED = hashlib.blake2b(b"test/receipts/other", digest_size=32).digest()
OTHER_PK, _ = sign_keypair(OTHER_SEED)
MESSAGE = b64e(b"\x01" * 16)
FROM = b64e(b"\x02" * 16)
READER_ACCOUNT = b64e(b"\x03" * 16)
MAILBOX = b64e(b"\x04" * 16)
DIGEST = H(b"an envelope", 64)


def _receipt() -> receipts.SignedReceipt:
    r = receipts.make_receipt(message=MESSAGE, from_=FROM, digest=DIGEST, accepted=NOW)
    return receipts.sign_receipt(r, SERVER_SEED)


def _flip(text: str) -> str:
    raw = bytearray(b64d(text))
    raw[0] ^= 1
    return b64e(bytes(raw))


# --- submission receipts ---------------------------------------------------------------------
def test_receipt_round_trip() -> None:
    signed = _receipt()
    assert signed["kid"] == derive_kid("sign", SERVER_PK)
    r = receipts.verify_receipt(signed, SERVER_PK)
    assert r == {"v": 1, "message": MESSAGE, "from": FROM, "digest": b64e(DIGEST), "accepted": NOW}
    assert receipts.verify_receipt(cj(signed), SERVER_PK) == r
    assert (
        receipts.verify_receipt_for(signed, SERVER_PK, message=MESSAGE, from_=FROM, digest=DIGEST)
        == r
    )


@pytest.mark.parametrize(
    ("member", "value"),
    [("message", b64e(b"\x09" * 16)), ("from", b64e(b"\x09" * 16)),
     ("digest", b64e(b"\x09" * 64)), ("accepted", NOW + 1)],
)  # fmt: skip
def test_receipt_tampered_member_is_a_bad_signature(member: str, value: Any) -> None:
    signed: Any = _receipt()
    signed["receipt"][member] = value
    with pytest.raises(errors.BadSignature):
        receipts.verify_receipt(signed, SERVER_PK)


def test_receipt_keys() -> None:
    signed = _receipt()
    with pytest.raises(errors.KeyIdMismatch):
        receipts.verify_receipt(signed, OTHER_PK)
    forged: Any = receipts.sign_receipt(signed["receipt"], OTHER_SEED)
    forged["kid"] = signed["kid"]
    with pytest.raises(errors.BadSignature):
        receipts.verify_receipt(forged, SERVER_PK)
    bad: Any = copy.deepcopy(signed)
    bad["sig"] = _flip(bad["sig"])
    with pytest.raises(errors.BadSignature):
        receipts.verify_receipt(bad, SERVER_PK)


def test_receipt_shape_and_canonical_wire() -> None:
    signed: Any = _receipt()
    extra = copy.deepcopy(signed)
    extra["receipt"]["note"] = "x"
    with pytest.raises(errors.MalformedObject):
        receipts.verify_receipt(extra, SERVER_PK)
    missing = copy.deepcopy(signed)
    del missing["kid"]
    with pytest.raises(errors.MalformedObject):
        receipts.verify_receipt(missing, SERVER_PK)
    with pytest.raises(errors.NonCanonical):
        receipts.verify_receipt(cj(signed) + b" ", SERVER_PK)
    with pytest.raises(errors.MalformedObject):
        receipts.make_receipt(message=MESSAGE, from_=FROM, digest=DIGEST[:32], accepted=NOW)


@pytest.mark.parametrize(
    "change",
    [{"message": b64e(b"\x09" * 16)}, {"from_": b64e(b"\x09" * 16)}, {"digest": H(b"other", 64)}],
)
def test_receipt_for_another_envelope(change: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"message": MESSAGE, "from_": FROM, "digest": DIGEST, **change}
    with pytest.raises(errors.ReceiptMismatch):
        receipts.verify_receipt_for(_receipt(), SERVER_PK, **kwargs)


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_receipt_any_bit_flip_of_sig(pos: int, bit: int) -> None:
    signed: Any = _receipt()
    raw = bytearray(b64d(signed["sig"]))
    raw[pos % len(raw)] ^= 1 << bit
    signed["sig"] = b64e(bytes(raw))
    with pytest.raises(errors.BadSignature):
        receipts.verify_receipt(signed, SERVER_PK)


# --- delivery chains ----------------------------------------------------------------------------
def _chain(*steps: tuple[str, int, str | None], seed: bytes = SERVER_SEED) -> list[SignedDelivery]:
    out: list[SignedDelivery] = []
    for event, at, by in steps:
        out.append(
            receipts.sign_delivery(
                message=MESSAGE, digest=DIGEST, event=event,  # type: ignore[arg-type]
                at=at, by=by, previous=out[-1] if out else None, receipt_seed=seed,
            )
        )  # fmt: skip
    return out


A = READER_ACCOUNT
B = b64e(b"\x05" * 16)


@pytest.mark.parametrize(
    "steps",
    [
        [("available", NOW, None)],
        [("available", NOW, FROM), ("notified", NOW + 5, MAILBOX)],
        [("available", NOW, None), ("retrieved", NOW + 1, A)],
        [("available", NOW, None), ("notified", NOW + 1, None), ("retrieved", NOW + 9, A)],
        [("available", NOW, None), ("retrieved", NOW, A), ("notified", NOW + 2, None)],
        [("available", NOW, None), ("notified", NOW, MAILBOX), ("notified", NOW, B),
         ("retrieved", NOW + 3, B), ("retrieved", NOW + 4, A)],
    ],
)  # fmt: skip
def test_delivery_chain_orders_allowed(steps: list[tuple[str, int, str | None]]) -> None:
    chain = _chain(*steps)
    record = receipts.verify_delivery_chain(chain, SERVER_PK, message=MESSAGE, digest=DIGEST)
    assert record.available == NOW
    assert [e["event"] for e in record.events] == [s[0] for s in steps]
    notified = [at for ev, at, _ in steps if ev == "notified"]
    retrieved = [at for ev, at, _ in steps if ev == "retrieved"]
    assert record.first_notified == (min(notified) if notified else None)
    assert record.first_retrieved == (min(retrieved) if retrieved else None)
    assert record.head == receipts.delivery_link(chain[-1])
    assert record.digest == DIGEST
    # the wire form (canonical bytes) verifies the same way
    assert receipts.verify_delivery_chain([cj(c) for c in chain], SERVER_PK).events == record.events


def test_delivery_link_is_blake2b_of_event_and_raw_sig() -> None:
    first, second = _chain(("available", NOW, None), ("notified", NOW, None))
    link = H(cj(first["delivery"]) + b64d(first["sig"]), 32)
    assert second["delivery"]["prev"] == b64e(link)


@pytest.mark.parametrize(
    "steps",
    [
        [("notified", NOW, None)],
        [("retrieved", NOW, A)],
        [("available", NOW, None), ("available", NOW, None)],
        [("available", NOW, None), ("retrieved", NOW, None)],
        [("available", NOW, None), ("retrieved", NOW, A), ("retrieved", NOW + 1, A)],
        [("available", NOW, None), ("notified", NOW, None), ("notified", NOW + 1, None)],
        [("available", NOW, None), ("notified", NOW - 1, None)],
    ],
)
def test_delivery_chain_order_rule(steps: list[tuple[str, int, str | None]]) -> None:
    with pytest.raises(errors.BrokenChain):
        receipts.verify_delivery_chain(_chain(*steps), SERVER_PK)


def test_delivery_chain_links() -> None:
    a, n, r = _chain(("available", NOW, None), ("notified", NOW, None), ("retrieved", NOW, A))
    for broken in ([a, r], [n, a, r], [a, r, n], [a, n, n], []):
        with pytest.raises(errors.BrokenChain):
            receipts.verify_delivery_chain(broken, SERVER_PK)
    # an event re-signed with another prev does not link either
    wrong = receipts.sign_delivery(
        message=MESSAGE, digest=DIGEST, event="retrieved", at=NOW, by=A, previous=a,
        receipt_seed=SERVER_SEED,
    )  # fmt: skip
    with pytest.raises(errors.BrokenChain):
        receipts.verify_delivery_chain([a, n, wrong], SERVER_PK)


def test_delivery_chain_one_message() -> None:
    a = _chain(("available", NOW, None))[0]
    other = receipts.sign_delivery(
        message=b64e(b"\x09" * 16), digest=DIGEST, event="notified", at=NOW, by=None,
        previous=a, receipt_seed=SERVER_SEED,
    )  # fmt: skip
    with pytest.raises(errors.BrokenChain):
        receipts.verify_delivery_chain([a, other], SERVER_PK)
    other_digest = receipts.sign_delivery(
        message=MESSAGE, digest=H(b"x", 64), event="notified", at=NOW, by=None, previous=a,
        receipt_seed=SERVER_SEED,
    )  # fmt: skip
    with pytest.raises(errors.BrokenChain):
        receipts.verify_delivery_chain([a, other_digest], SERVER_PK)
    with pytest.raises(errors.ReceiptMismatch):
        receipts.verify_delivery_chain([a], SERVER_PK, message=b64e(b"\x09" * 16))
    with pytest.raises(errors.ReceiptMismatch):
        receipts.verify_delivery_chain([a], SERVER_PK, digest=H(b"x", 64))


def test_delivery_signatures() -> None:
    chain: Any = _chain(("available", NOW, None), ("retrieved", NOW, A))
    with pytest.raises(errors.KeyIdMismatch):
        receipts.verify_delivery_chain(chain, OTHER_PK)
    chain[1]["delivery"]["at"] += 1
    with pytest.raises(errors.BadSignature):
        receipts.verify_delivery_chain(chain, SERVER_PK)
    with pytest.raises(errors.NonCanonical):
        receipts.verify_delivery(b'{"delivery": 1}', SERVER_PK)


# --- read receipts and countersignatures ----------------------------------------------------------
def _read(world: World) -> receipts.SignedRead:
    c = world.citizen
    assert c.sign_seed is not None
    sth: receipts.SthRef = {"size": 7, "root": b64e(b"\x07" * 32)}
    return receipts.sign_read(
        message=MESSAGE, digest=DIGEST, mailbox=c.id, reader=c.id, sth=sth, read=NOW + 60_000,
        reader_seed=c.sign_seed,
    )  # fmt: skip


def test_read_receipt_round_trip(world: World) -> None:
    signed = _read(world)
    assert world.citizen.identity is not None
    r = receipts.verify_read(signed, world.citizen.identity)
    assert r["reader"] == world.citizen.id
    assert r["sth"] == {"size": 7, "root": b64e(b"\x07" * 32)}
    assert signed["kid"] == world.citizen.identity["kid"]
    assert receipts.verify_read(cj(signed), world.citizen.identity) == r


def test_read_receipt_rejects(world: World) -> None:
    signed: Any = _read(world)
    assert world.other_citizen.identity is not None and world.citizen.identity is not None
    with pytest.raises(errors.CertificateInvalid):
        receipts.verify_read(signed, world.other_citizen.identity)
    with pytest.raises(errors.CertificateInvalid):
        receipts.verify_read(signed, world.citizen.enc)
    impostor = dict(world.other_citizen.identity, subject=world.citizen.id)
    with pytest.raises(errors.KeyIdMismatch):
        receipts.verify_read(signed, impostor)  # type: ignore[arg-type]
    signed["read"]["read"] += 1
    with pytest.raises(errors.BadSignature):
        receipts.verify_read(signed, world.citizen.identity)
    signed["read"]["sth"]["size"] = 0
    with pytest.raises(errors.MalformedObject):
        receipts.verify_read(signed, world.citizen.identity)


def test_countersign(world: World) -> None:
    read = _read(world)
    cs = receipts.sign_countersign(read, received=NOW + 61_000, receipt_seed=SERVER_SEED)
    assert cs["countersign"]["read"] == b64e(H(cj(read["read"]) + b64d(read["sig"]), 32))
    body = receipts.verify_countersign(cs, read, SERVER_PK)
    assert body["received"] == NOW + 61_000
    assert receipts.verify_countersign(cj(cs), cj(read), SERVER_PK) == body
    with pytest.raises(errors.KeyIdMismatch):
        receipts.verify_countersign(cs, read, OTHER_PK)
    other_read: Any = copy.deepcopy(read)
    other_read["sig"] = _flip(other_read["sig"])
    with pytest.raises(errors.ReceiptMismatch):
        receipts.verify_countersign(cs, other_read, SERVER_PK)
    tampered: Any = copy.deepcopy(cs)
    tampered["countersign"]["received"] += 1
    with pytest.raises(errors.BadSignature):
        receipts.verify_countersign(tampered, read, SERVER_PK)


# --- flip-one-byte tamper tests over the canonical wire bytes -------------------------------------
def _every_flip(body: bytes) -> list[bytes]:
    out = []
    for i in range(len(body)):
        for mask in (0x01, 0x20):
            b = bytearray(body)
            b[i] ^= mask
            out.append(bytes(b))
    return out


def test_every_single_byte_flip_is_refused(world: World) -> None:
    read = _read(world)
    assert world.citizen.identity is not None
    identity = world.citizen.identity
    cs = receipts.sign_countersign(read, received=NOW, receipt_seed=SERVER_SEED)
    delivery = _chain(("available", NOW, None))[0]
    checks: list[tuple[bytes, Any]] = [
        (cj(_receipt()), lambda b: receipts.verify_receipt(b, SERVER_PK)),
        (cj(delivery), lambda b: receipts.verify_delivery_chain([b], SERVER_PK)),
        (cj(read), lambda b: receipts.verify_read(b, identity)),
        (cj(cs), lambda b: receipts.verify_countersign(b, read, SERVER_PK)),
    ]
    for body, verify_fn in checks:
        verify_fn(body)
        for flipped in _every_flip(body):
            with pytest.raises(errors.CryptoError):
                verify_fn(flipped)
