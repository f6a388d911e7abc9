"""tests/vectors/envelope.json: rebuild every deterministic output, open every case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from postbox.crypto import envelope, errors
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import box_keypair, seal_open

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "envelope.json").read_text())
CASES = VECTORS["cases"]
REJECTS = VECTORS["reject"] + VECTORS["project_reject"]


def _keys(case: dict[str, Any]) -> dict[str, tuple[bytes, bytes]]:
    pk, sk = b64d(case["recipient_pk"]), b64d(case["recipient_sk"])
    assert box_keypair(sk)[0] == pk
    return {derive_kid("encrypt", pk): (pk, sk)}


def _open(case: dict[str, Any], wire: Any) -> envelope.Opened:
    return envelope.open_message(
        wire,
        mailbox=case["recipient_mailbox"],
        keys=_keys(case),
        sender=case["signer_identity_cert"],
        sender_team_org=case["sender_team_org"],
        sth_check=lambda size, root: None,
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rebuild_deterministic_outputs(case: dict[str, Any]) -> None:
    h = case["header"]
    sealed = envelope.seal_message(
        content=case["content"],
        message_id=h["id"],
        kind=h["kind"],
        from_=h["from"],
        signer=h["signer"],
        signer_seed=b64d(case["signer_seed"]),
        to=h["to"],
        recipients={c["subject"]: c for c in case["recipients"]},
        thread=h["thread"],
        case=h["case"],
        created=h["created"],
        blobs=h["blobs"],
        mk=b64d(case["mk"]),
        nonce=b64d(case["nonce"]),
    )
    assert sealed.wire["header"] == h == case["wire"]["header"]
    assert sealed.wire["ct"] == case["wire"]["ct"]
    assert sealed.wire["signature"] == case["wire"]["signature"]
    assert b64e(sealed.digest) == case["digest"]
    assert [(k["mailbox"], k["kid"]) for k in sealed.wire["keys"]] == [
        (k["mailbox"], k["kid"]) for k in case["wire"]["keys"]
    ]
    assert len(b64d(case["wire"]["ct"])) - 16 == case["padded_length"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_open_every_case(case: dict[str, Any]) -> None:
    opened = _open(case, cj(case["wire"]))
    assert opened.content == case["content"]
    assert b64e(opened.digest) == case["digest"]
    # the randomized sealed box opens to the stated mk
    mine = next(k for k in case["wire"]["keys"] if k["mailbox"] == case["recipient_mailbox"])
    pk, sk = b64d(case["recipient_pk"]), b64d(case["recipient_sk"])
    assert seal_open(b64d(mine["sealed"]), pk, sk) == b64d(case["mk"])


@pytest.mark.parametrize("case", REJECTS, ids=[r["name"] for r in REJECTS])
def test_reject_cases(case: dict[str, Any]) -> None:
    wire = b64d(case["body"]) if "body" in case else cj(case["wire"])
    with pytest.raises(errors.CryptoError) as info:
        _open(case, wire)
    assert type(info.value).__name__ == case["error"]
