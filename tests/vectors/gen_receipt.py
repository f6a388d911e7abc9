"""receipt.json: submission receipts, delivery chains, read receipts and countersignatures
(PROTOCOL.md §8, §10).

Every output is deterministic (Ed25519 over fixed seeds). Each case has ``kind``:

* ``receipt`` — ``server_pk``, ``wire``, ``receipt``, ``sig`` (the §10 fields), plus the
  inputs (``server_seed``, ``message``, ``from``, ``digest``, ``accepted``), ``kid`` and
  ``signed`` (b64 of ``"postbox/v1/receipt" ‖ cj(receipt)``);
* ``delivery_chain`` — ``steps`` (``[event, at, by]``), ``chain`` (the wire events),
  ``links`` (``H(cj(event) ‖ sig)`` of each) and the ``record`` the legal clock reads;
* ``read`` — ``reader_seed``, ``reader_identity`` (the reader's certificate), ``read``,
  ``sig``, ``wire``;
* ``countersign`` — ``read_wire``, ``read_hash``, ``countersign``, ``sig``, ``wire``.

Rejects have ``check`` (``receipt``, ``receipt_for``, ``delivery_chain``, ``read``,
``countersign``) and the expected ``error``; a ``body`` (b64) is a wire body as bytes,
which must be canonical JSON.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from postbox.crypto import certs, domain, receipts
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, sign_keypair
from postbox.crypto.receipts import SignedDelivery

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
DAY = 24 * 60 * MINUTE


def seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(("vector-seed/receipt/" + label).encode(), digest_size=n).digest()


def ident(label: str) -> str:
    return b64e(seed("id/" + label, 16))


SERVER_SEED = seed("server-receipt-key")
SERVER_PK, _ = sign_keypair(SERVER_SEED)
OTHER_SEED = seed("other-server")
OTHER_PK, _ = sign_keypair(OTHER_SEED)


def _flip(text: str) -> str:
    raw = bytearray(b64d(text))
    raw[len(raw) // 2] ^= 0x10
    return b64e(bytes(raw))


def receipt_case(name: str, label: str, accepted: int) -> dict[str, Any]:
    message, from_ = ident(f"{label}/message"), ident(f"{label}/from")
    digest = H(b"envelope/" + label.encode(), 64)
    r = receipts.make_receipt(message=message, from_=from_, digest=digest, accepted=accepted)
    wire = receipts.sign_receipt(r, SERVER_SEED)
    return {
        "name": name, "kind": "receipt", "server_seed": b64e(SERVER_SEED),
        "server_pk": b64e(SERVER_PK), "kid": derive_kid("sign", SERVER_PK), "message": message,
        "from": from_, "digest": b64e(digest), "accepted": accepted, "receipt": r,
        "sig": wire["sig"], "signed": b64e(domain.RECEIPT + cj(r)), "wire": wire,
    }  # fmt: skip


def make_chain(
    steps: list[tuple[str, int, str | None]], *, message: str, digest: bytes
) -> list[SignedDelivery]:
    chain: list[SignedDelivery] = []
    for event, at, by in steps:
        chain.append(
            receipts.sign_delivery(
                message=message, digest=digest, event=event,  # type: ignore[arg-type]
                at=at, by=by, previous=chain[-1] if chain else None, receipt_seed=SERVER_SEED,
            )
        )  # fmt: skip
    return chain


def record_json(record: receipts.DeliveryRecord) -> dict[str, Any]:
    """The legal clock's view of a chain (the JS test builds the same object)."""
    return {
        "message": record.message,
        "digest": b64e(record.digest),
        "available": record.available,
        "notified": [[by, at] for by, at in record.notified.items()],
        "retrieved": [[by, at] for by, at in record.retrieved.items()],
        "first_notified": record.first_notified,
        "first_retrieved": record.first_retrieved,
        "head": b64e(record.head),
    }


def delivery_case(
    name: str, label: str, steps: list[tuple[str, int, str | None]]
) -> dict[str, Any]:
    message = ident(f"{label}/message")
    digest = H(b"envelope/" + label.encode(), 64)
    chain = make_chain(steps, message=message, digest=digest)
    record = receipts.verify_delivery_chain(chain, SERVER_PK, message=message, digest=digest)
    return {
        "name": name, "kind": "delivery_chain", "server_seed": b64e(SERVER_SEED),
        "server_pk": b64e(SERVER_PK), "message": message, "digest": b64e(digest),
        "steps": [list(s) for s in steps], "chain": chain,
        "links": [b64e(receipts.delivery_link(c)) for c in chain],
        "record": record_json(record),
    }  # fmt: skip


def build() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    reject: list[dict[str, Any]] = []
    base_receipt = receipt_case("receipt: citizen's application received", "application", NOW)
    cases.append(base_receipt)
    cases.append(receipt_case("receipt: accepted at the largest safe time", "late", 2**53 - 1))

    citizen, caseworker = ident("citizen"), ident("caseworker")
    other_citizen = ident("other-citizen")
    deliveries = [
        ("delivery: available only", "d1", [("available", NOW, caseworker)]),
        ("delivery: available, notified, retrieved", "d2",
         [("available", NOW, caseworker), ("notified", NOW + MINUTE, citizen),
          ("retrieved", NOW + 2 * DAY, citizen)]),
        ("delivery: retrieved before the notification went out", "d3",
         [("available", NOW, None), ("retrieved", NOW, citizen),
          ("notified", NOW + MINUTE, citizen)]),
        ("delivery: notified, never retrieved", "d4",
         [("available", NOW, caseworker), ("notified", NOW, None)]),
        ("delivery: two recipient mailboxes", "d5",
         [("available", NOW, None), ("notified", NOW + 1, citizen),
          ("notified", NOW + 1, other_citizen), ("retrieved", NOW + DAY, other_citizen),
          ("retrieved", NOW + 3 * DAY, citizen)]),
    ]  # fmt: skip
    for name, label, plan in deliveries:
        cases.append(delivery_case(name, label, plan))  # type: ignore[arg-type]

    # read receipt by a citizen, countersigned by the server
    reader_seed = seed("reader-identity")
    reader_pk, _ = sign_keypair(reader_seed)
    reader_cert = certs.make_cert(
        subject=citizen, kind="citizen", org=None, use="sign", pk=reader_pk, created=NOW - DAY
    )
    message = ident("d2/message")
    digest = H(b"envelope/d2", 64)
    sth: receipts.SthRef = {"size": 42, "root": b64e(H(b"root/42", 32))}
    read = receipts.sign_read(
        message=message, digest=digest, mailbox=citizen, reader=citizen, sth=sth,
        read=NOW + 2 * DAY + MINUTE, reader_seed=reader_seed,
    )  # fmt: skip
    cases.append({
        "name": "read: citizen reads an authority's message", "kind": "read",
        "reader_seed": b64e(reader_seed), "reader_pk": b64e(reader_pk),
        "reader_identity": reader_cert, "kid": read["kid"], "read": read["read"],
        "sig": read["sig"], "signed": b64e(domain.READ + cj(read["read"])), "wire": read,
    })  # fmt: skip
    cs = receipts.sign_countersign(read, received=NOW + 2 * DAY + MINUTE + 800,
                                   receipt_seed=SERVER_SEED)  # fmt: skip
    cases.append({
        "name": "countersign: the server countersigns the read receipt", "kind": "countersign",
        "server_seed": b64e(SERVER_SEED), "server_pk": b64e(SERVER_PK), "read_wire": read,
        "read_hash": b64e(receipts.read_hash(read)), "countersign": cs["countersign"],
        "sig": cs["sig"], "signed": b64e(domain.COUNTERSIGN + cj(cs["countersign"])), "wire": cs,
    })  # fmt: skip

    # --- rejects ---
    wire = base_receipt["wire"]
    pk = b64e(SERVER_PK)

    def rcpt(name: str, error: str, **over: Any) -> None:
        reject.append({"name": name, "error": error, "check": "receipt", "server_pk": pk,
                       "wire": wire, **over})  # fmt: skip

    bad_sig = copy.deepcopy(wire)
    bad_sig["sig"] = _flip(bad_sig["sig"])
    rcpt("receipt: bad signature", "BadSignature", wire=bad_sig)
    rcpt("receipt: pinned key is another server's", "KeyIdMismatch", server_pk=b64e(OTHER_PK))
    forged = dict(receipts.sign_receipt(wire["receipt"], OTHER_SEED), kid=wire["kid"])
    rcpt("receipt: signed by another key naming the pinned kid", "BadSignature", wire=forged)
    tampered = copy.deepcopy(wire)
    tampered["receipt"]["digest"] = b64e(H(b"other", 64))
    rcpt("receipt: digest changed after signing", "BadSignature", wire=tampered)
    extra = copy.deepcopy(wire)
    extra["receipt"]["status"] = "ok"
    rcpt("receipt: unknown member", "MalformedObject", wire=extra)
    short = copy.deepcopy(wire)
    short["receipt"]["digest"] = b64e(H(b"short", 32))
    rcpt("receipt: 32-byte digest", "MalformedObject", wire=short)
    string_time = copy.deepcopy(wire)
    string_time["receipt"]["accepted"] = str(NOW)
    rcpt("receipt: accepted as a string", "MalformedObject", wire=string_time)
    spaced = json.dumps(wire, sort_keys=True).encode()
    rcpt("receipt: non-canonical body (whitespace)", "NonCanonical", wire=None, body=b64e(spaced))
    unsorted = json.dumps(wire, separators=(",", ":")).encode()
    assert unsorted != cj(wire)
    rcpt("receipt: non-canonical body (member order)", "NonCanonical", wire=None,
         body=b64e(unsorted))  # fmt: skip
    escaped = cj(wire).replace(b'"kid"', b'"\\u006bid"')
    rcpt("receipt: non-canonical body (needless escape)", "NonCanonical", wire=None,
         body=b64e(escaped))  # fmt: skip
    reject.append({
        "name": "receipt: valid, but for another envelope digest", "error": "ReceiptMismatch",
        "check": "receipt_for", "server_pk": pk, "wire": wire,
        "message": base_receipt["message"], "from": base_receipt["from"],
        "digest": b64e(H(b"what the sender really sent", 64)),
    })  # fmt: skip
    reject.append({
        "name": "receipt: valid, but for another message id", "error": "ReceiptMismatch",
        "check": "receipt_for", "server_pk": pk, "wire": wire, "message": ident("another"),
        "from": base_receipt["from"], "digest": base_receipt["digest"],
    })  # fmt: skip

    # delivery chains
    dmsg, ddig = ident("d2/message"), H(b"envelope/d2", 64)
    good = make_chain(
        [("available", NOW, caseworker), ("notified", NOW + MINUTE, citizen),
         ("retrieved", NOW + 2 * DAY, citizen)], message=dmsg, digest=ddig,
    )  # fmt: skip

    def chain_reject(name: str, error: str, chain: Any, **over: Any) -> None:
        reject.append({"name": name, "error": error, "check": "delivery_chain", "server_pk": pk,
                       "chain": chain, "message": None, "digest": None, **over})  # fmt: skip

    def steps(*s: tuple[str, int, str | None]) -> list[SignedDelivery]:
        return make_chain(list(s), message=dmsg, digest=ddig)

    chain_reject("delivery: empty chain", "BrokenChain", [])
    chain_reject(
        "delivery: starts with notified",
        "BrokenChain",
        steps(("notified", NOW, citizen), ("retrieved", NOW, citizen)),
    )
    chain_reject("delivery: first event has a prev", "BrokenChain", good[1:])
    chain_reject("delivery: an event left out", "BrokenChain", [good[0], good[2]])
    chain_reject("delivery: events swapped", "BrokenChain", [good[0], good[2], good[1]])
    chain_reject(
        "delivery: time goes backwards",
        "BrokenChain",
        steps(("available", NOW, None), ("notified", NOW - 1, citizen)),
    )
    chain_reject(
        "delivery: made available twice",
        "BrokenChain",
        steps(("available", NOW, None), ("available", NOW, None)),
    )
    chain_reject(
        "delivery: first retrieval recorded twice",
        "BrokenChain",
        steps(
            ("available", NOW, None), ("retrieved", NOW, citizen), ("retrieved", NOW + 1, citizen)
        ),
    )
    chain_reject(
        "delivery: notified twice for one mailbox",
        "BrokenChain",
        steps(
            ("available", NOW, None), ("notified", NOW, citizen), ("notified", NOW + DAY, citizen)
        ),
    )
    chain_reject(
        "delivery: retrieval without the retrieving account",
        "BrokenChain",
        steps(("available", NOW, None), ("retrieved", NOW, None)),
    )
    other = receipts.sign_delivery(
        message=ident("other/message"), digest=ddig, event="notified", at=NOW + MINUTE,
        by=citizen, previous=good[0], receipt_seed=SERVER_SEED,
    )  # fmt: skip
    chain_reject("delivery: an event about another message", "BrokenChain", [good[0], other])
    other_digest = receipts.sign_delivery(
        message=dmsg, digest=H(b"x", 64), event="notified", at=NOW + MINUTE, by=citizen,
        previous=good[0], receipt_seed=SERVER_SEED,
    )  # fmt: skip
    chain_reject("delivery: an event about another digest", "BrokenChain", [good[0], other_digest])
    tampered_chain = copy.deepcopy(good)
    tampered_chain[2]["delivery"]["at"] = NOW + 11 * DAY
    chain_reject("delivery: retrieval time changed after signing", "BadSignature", tampered_chain)
    chain_reject(
        "delivery: pinned key is another server's", "KeyIdMismatch", good, server_pk=b64e(OTHER_PK)
    )
    chain_reject(
        "delivery: chain of another message",
        "ReceiptMismatch",
        good,
        message=ident("another"),
        digest=b64e(ddig),
    )
    chain_reject(
        "delivery: chain of another digest",
        "ReceiptMismatch",
        good,
        message=dmsg,
        digest=b64e(H(b"x", 64)),
    )
    bad_event: Any = copy.deepcopy(good[1])
    bad_event["delivery"]["event"] = "read"
    chain_reject("delivery: unknown event name", "MalformedObject", [good[0], bad_event])
    chain_reject(
        "delivery: non-canonical event body",
        "NonCanonical",
        None,
        bodies=[b64e(cj(good[0])), b64e(json.dumps(good[1], sort_keys=True).encode())],
    )

    # read receipts and countersignatures
    other_reader_pk, _ = sign_keypair(seed("other-reader"))
    impostor = certs.make_cert(
        subject=citizen, kind="citizen", org=None, use="sign", pk=other_reader_pk,
        created=NOW - DAY,
    )  # fmt: skip
    stranger = certs.make_cert(
        subject=other_citizen, kind="citizen", org=None, use="sign", pk=reader_pk,
        created=NOW - DAY,
    )  # fmt: skip
    tampered_read = copy.deepcopy(read)
    tampered_read["read"]["read"] += 1

    def read_reject(name: str, error: str, **over: Any) -> None:
        reject.append({"name": name, "error": error, "check": "read",
                       "reader_identity": reader_cert, "wire": read, **over})  # fmt: skip

    read_reject("read: read time changed after signing", "BadSignature", wire=tampered_read)
    read_reject(
        "read: certificate of another key for the same reader",
        "KeyIdMismatch",
        reader_identity=impostor,
    )
    read_reject(
        "read: certificate of another reader", "CertificateInvalid", reader_identity=stranger
    )
    no_sth: Any = copy.deepcopy(read)
    no_sth["read"]["sth"] = {"size": 42}
    read_reject("read: sth without root", "MalformedObject", wire=no_sth)

    def cs_reject(name: str, error: str, **over: Any) -> None:
        reject.append({"name": name, "error": error, "check": "countersign", "server_pk": pk,
                       "wire": cs, "read_wire": read, **over})  # fmt: skip

    other_read = receipts.sign_read(
        message=message, digest=digest, mailbox=citizen, reader=citizen, sth=sth,
        read=NOW + 3 * DAY, reader_seed=reader_seed,
    )  # fmt: skip
    cs_reject("countersign: of another read receipt", "ReceiptMismatch", read_wire=other_read)
    bad_cs = copy.deepcopy(cs)
    bad_cs["countersign"]["received"] -= 1
    cs_reject("countersign: received time changed after signing", "BadSignature", wire=bad_cs)
    cs_reject("countersign: pinned key is another server's", "KeyIdMismatch",
              server_pk=b64e(OTHER_PK))  # fmt: skip
    for r in reject:
        if r["name"] in ORDER_RULE:
            r["rule"] = "delivery order rule, a project decision: see postbox/crypto/receipts.py"
        elif r["error"] == "KeyIdMismatch":
            r["rule"] = (
                "kid must equal derive_kid('sign', pinned key), checked before the signature"
            )

    # PROTOCOL.md §10 fixes the fields of "cases" for this file (submission receipts:
    # server_pk, wire, receipt, sig); the other signed objects go in lists of their own so
    # that an implementation written from §10 alone can read "cases" and "reject" as is.
    def is_receipt(c: dict[str, Any]) -> bool:
        return c.get("kind", c.get("check")) in ("receipt", "receipt_for")

    return {
        "cases": [c for c in cases if is_receipt(c)],
        "reject": [r for r in reject if is_receipt(r)],
        "other_cases": [c for c in cases if not is_receipt(c)],
        "other_reject": [r for r in reject if not is_receipt(r)],
    }


#: rejects that follow from the project's delivery order rule rather than PROTOCOL.md itself
ORDER_RULE = frozenset(
    {
        "delivery: starts with notified",
        "delivery: time goes backwards",
        "delivery: made available twice",
        "delivery: first retrieval recorded twice",
        "delivery: notified twice for one mailbox",
        "delivery: retrieval without the retrieving account",
    }
)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import generate

    Path(__file__).with_name("receipt.json").write_text(generate.build("receipt"))
