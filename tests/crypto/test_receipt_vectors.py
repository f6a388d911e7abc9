"""tests/vectors/receipt.json: rebuild every signature, verify every case, refuse every reject."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gen_receipt
import pytest

from postbox.crypto import domain, errors, receipts
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import sign_keypair

PATH = Path(__file__).parents[1] / "vectors" / "receipt.json"
VECTORS = json.loads(PATH.read_text("utf-8"))
CASES: list[dict[str, Any]] = VECTORS["cases"] + VECTORS["other_cases"]
REJECTS: list[dict[str, Any]] = VECTORS["reject"] + VECTORS["other_reject"]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["kind"] == kind]


def test_every_kind_is_covered() -> None:
    assert {c["kind"] for c in CASES} == {"receipt", "delivery_chain", "read", "countersign"}
    assert {r["check"] for r in REJECTS} == {
        "receipt", "receipt_for", "delivery_chain", "read", "countersign",
    }  # fmt: skip


@pytest.mark.parametrize("case", _by_kind("receipt"), ids=lambda c: c["name"])
def test_receipt_case(case: dict[str, Any]) -> None:
    seed, pk = b64d(case["server_seed"]), b64d(case["server_pk"])
    assert sign_keypair(seed)[0] == pk
    receipt = receipts.make_receipt(
        message=case["message"], from_=case["from"], digest=b64d(case["digest"]),
        accepted=case["accepted"],
    )  # fmt: skip
    assert receipt == case["receipt"]
    assert b64d(case["signed"]) == domain.RECEIPT + cj(receipt)
    wire = receipts.sign_receipt(receipt, seed)
    assert wire == case["wire"]
    assert wire["sig"] == case["sig"] and wire["kid"] == case["kid"] == derive_kid("sign", pk)
    assert receipts.verify_receipt(case["wire"], pk) == case["receipt"]
    assert receipts.verify_receipt(cj(case["wire"]), pk) == case["receipt"]
    assert receipts.verify_receipt_for(
        case["wire"], pk, message=case["message"], from_=case["from"],
        digest=b64d(case["digest"]),
    ) == case["receipt"]  # fmt: skip


@pytest.mark.parametrize("case", _by_kind("delivery_chain"), ids=lambda c: c["name"])
def test_delivery_case(case: dict[str, Any]) -> None:
    seed, pk = b64d(case["server_seed"]), b64d(case["server_pk"])
    digest = b64d(case["digest"])
    rebuilt = gen_receipt.make_chain(
        [tuple(s) for s in case["steps"]], message=case["message"], digest=digest
    )
    assert rebuilt == case["chain"]
    assert sign_keypair(seed)[0] == pk
    assert [b64e(receipts.delivery_link(c)) for c in case["chain"]] == case["links"]
    record = receipts.verify_delivery_chain(
        case["chain"], pk, message=case["message"], digest=digest
    )
    assert gen_receipt.record_json(record) == case["record"]


@pytest.mark.parametrize("case", _by_kind("read"), ids=lambda c: c["name"])
def test_read_case(case: dict[str, Any]) -> None:
    seed = b64d(case["reader_seed"])
    assert sign_keypair(seed)[0] == b64d(case["reader_pk"]) == b64d(case["reader_identity"]["pk"])
    r = case["read"]
    wire = receipts.sign_read(
        message=r["message"], digest=b64d(r["digest"]), mailbox=r["mailbox"], reader=r["reader"],
        sth=r["sth"], read=r["read"], reader_seed=seed,
    )  # fmt: skip
    assert wire == case["wire"]
    assert b64d(case["signed"]) == domain.READ + cj(r)
    assert receipts.verify_read(case["wire"], case["reader_identity"]) == r


@pytest.mark.parametrize("case", _by_kind("countersign"), ids=lambda c: c["name"])
def test_countersign_case(case: dict[str, Any]) -> None:
    seed, pk = b64d(case["server_seed"]), b64d(case["server_pk"])
    assert b64e(receipts.read_hash(case["read_wire"])) == case["read_hash"]
    wire = receipts.sign_countersign(
        case["read_wire"], received=case["countersign"]["received"], receipt_seed=seed
    )
    assert wire == case["wire"]
    assert b64d(case["signed"]) == domain.COUNTERSIGN + cj(case["countersign"])
    assert receipts.verify_countersign(case["wire"], case["read_wire"], pk) == case["countersign"]


def _reject(case: dict[str, Any]) -> None:
    check = case["check"]
    if check == "receipt":
        wire = b64d(case["body"]) if case["wire"] is None else case["wire"]
        receipts.verify_receipt(wire, b64d(case["server_pk"]))
    elif check == "receipt_for":
        receipts.verify_receipt_for(
            case["wire"], b64d(case["server_pk"]), message=case["message"],
            from_=case["from"], digest=b64d(case["digest"]),
        )  # fmt: skip
    elif check == "delivery_chain":
        chain = [b64d(b) for b in case["bodies"]] if case["chain"] is None else case["chain"]
        digest = None if case["digest"] is None else b64d(case["digest"])
        receipts.verify_delivery_chain(
            chain, b64d(case["server_pk"]), message=case["message"], digest=digest
        )
    elif check == "read":
        receipts.verify_read(case["wire"], case["reader_identity"])
    elif check == "countersign":
        receipts.verify_countersign(case["wire"], case["read_wire"], b64d(case["server_pk"]))
    else:
        raise AssertionError(check)


@pytest.mark.parametrize("case", REJECTS, ids=lambda c: c["name"])
def test_reject(case: dict[str, Any]) -> None:
    with pytest.raises(errors.CryptoError) as info:
        _reject(case)
    assert type(info.value).__name__ == case["error"]
