"""Every bad send of the issue's "Bad input" list: a precise 4xx, nothing stored, and
answers that never tell whether a mailbox of another organisation exists."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from messages.world import MESSAGES, MsgWorld, attachment_for, post
from sqlalchemy import select
from support.onboard import YEAR, Person, new_id

from postbox.crypto import certs
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.envelope import Wire, key_commitment, message_digest, open_message
from postbox.crypto.errors import KeyCommitmentMismatch
from postbox.crypto.primitives import box_keypair, random_bytes, sign
from postbox.mailbox.appkeys import DB, SETTINGS
from postbox.mailbox.db import schema

MIN = 60 * 1000


def code(problem: Any) -> str:
    return str(problem["type"]).rsplit(":", 1)[1]


def fake_cert(
    subject: str, now: int, kind: certs.Kind = "citizen", org: str | None = None
) -> certs.Cert:
    """An encryption certificate nobody certified (for a mailbox the sender made up, or a
    key that is not the mailbox's current one)."""
    return certs.make_cert(
        subject=subject,
        kind=kind,
        org=org,
        use="encrypt",
        pk=box_keypair(random_bytes(32))[0],
        created=now,
        expires=now + YEAR,
    )


def resign(wire: Wire, seed: bytes) -> bytes:
    """The canonical body of ``wire`` with a fresh signature by ``seed`` over its digest."""
    w: Any = copy.deepcopy(wire)
    digest = message_digest(w["header"], b64d(w["nonce"], 24), b64d(w["ct"]))
    w["signature"] = b64e(sign(seed, digest))
    return cj(w)


async def refused(w: MsgWorld, sender: Person, body: bytes, status: int, expected: str) -> Any:
    """Post, expect the problem, and check that no table moved."""
    before = await w.counts()
    got, problem = await w.post(sender, body)
    assert (got, code(problem)) == (status, expected), problem
    assert await w.counts() == before
    return problem


# --- who may write to whom ------------------------------------------------------------------
async def test_unknown_and_not_allowed_recipients_get_the_same_answer(msg_world: MsgWorld) -> None:
    w = msg_world
    now = w.clock.now
    ghost = new_id()
    keys = {ghost: fake_cert(ghost, now)}
    cases = [
        (w.c1, [ghost], None),  # nobody
        (w.c1, [w.c2.id], None),  # citizen to citizen
        (w.c1, [w.cwb.id], None),  # a caseworker of another org, in person
        (w.c1, [w.home.setup.admin.id], None),  # an admin
        (w.cw1, [ghost], w.team),
        (w.cw1, [w.cb.id], w.team),  # a citizen of another org who never wrote
        (w.cw1, [w.other.team], w.team),  # another org's team
        (w.cw1, [w.cw2.id], w.team),  # a colleague in person
        (w.cw1, [w.c1.id, w.other.team], w.team),  # one bad recipient spoils the message
    ]
    answers = []
    for sender, to, from_ in cases:
        sealed = w.seal(sender, to, from_=from_, keys=keys)
        problem = await refused(w, sender, sealed.body, 404, "unknown-recipient")
        assert problem["mailbox"] in to
        answers.append((problem["title"], problem["detail"], sorted(problem)))
    assert len(set(map(str, answers))) == 1


async def test_senders_and_sending_mailboxes(msg_world: MsgWorld) -> None:
    w = msg_world
    # the envelope's signer must be the caller
    sealed = w.seal(w.c1, [w.team])
    await refused(w, w.c2, sealed.body, 403, "signer-not-caller")
    # a citizen never writes as a team; staff only for their own org's teams
    await refused(w, w.c1, w.seal(w.c1, [w.c2.id], from_=w.team).body, 403, "may-not-send-as")
    await refused(w, w.cwb, w.seal(w.cwb, [w.c1.id], from_=w.team).body, 403, "may-not-send-as")
    await refused(
        w, w.cw1, w.seal(w.cw1, [w.cb.id], from_=w.other.team).body, 403, "may-not-send-as"
    )
    # admins manage, they do not write
    admin = w.home.setup.admin
    await refused(w, admin, w.seal(admin, [w.team]).body, 403, "may-not-send")
    # a caseworker whose identity the org root has not certified yet
    pending = w.uncertified
    problem = await refused(w, pending, w.seal(pending, [w.team]).body, 409, "stale-sender-key")
    assert problem["kid"] is None


async def test_unauthenticated_sends_are_refused(msg_world: MsgWorld) -> None:
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    resp = await w.client.post(
        MESSAGES, data=sealed.body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 401


# --- keys and signatures --------------------------------------------------------------------
async def test_wrong_kid_is_stale_key_with_the_current_one(msg_world: MsgWorld) -> None:
    w = msg_world
    now = w.clock.now
    old_team_key = fake_cert(w.team, now, "team", w.home.id)
    problem = await refused(
        w, w.c1, w.seal(w.c1, [w.team], keys={w.team: old_team_key}).body, 409, "stale-key"
    )
    assert (problem["mailbox"], problem["kid"]) == (w.team, w.home.team_key.cert["kid"])
    # the sender's own copy must be sealed to its current key too
    own = w.seal(w.c1, [w.team], keys={w.c1.id: fake_cert(w.c1.id, now)})
    problem = await refused(w, w.c1, own.body, 409, "stale-key")
    assert (problem["mailbox"], problem["kid"]) == (w.c1.id, w.c1.enc_cert["kid"])


async def test_forged_signatures(msg_world: MsgWorld) -> None:
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    wire: Any = copy.deepcopy(sealed.wire)
    sig = bytearray(b64d(wire["signature"], 64))
    sig[5] ^= 1
    wire["signature"] = b64e(bytes(sig))
    await refused(w, w.c1, cj(wire), 400, "invalid-signature")
    # signed by someone else's key, still naming c1's identity
    await refused(w, w.c1, resign(sealed.wire, w.c2.sign_seed), 400, "invalid-signature")
    # a kid that names no identity, or another account's identity
    for kid in (b64e(random_bytes(16)), w.c2.identity_cert["kid"]):
        forged: Any = copy.deepcopy(sealed.wire)
        forged["header"]["sender_kid"] = kid
        await refused(w, w.c1, resign(forged, w.c1.sign_seed), 400, "unknown-sender-key")


async def test_non_canonical_and_malformed_envelopes(msg_world: MsgWorld) -> None:
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    pretty = json.dumps(sealed.wire, indent=1).encode()
    await refused(w, w.c1, pretty, 400, "non-canonical")
    unsorted = json.dumps(sealed.wire, separators=(",", ":"), sort_keys=False).encode()
    if unsorted != sealed.body:
        await refused(w, w.c1, unsorted, 400, "non-canonical")
    broken: Any = copy.deepcopy(sealed.wire)
    broken["keys"].reverse()
    await refused(w, w.c1, resign(broken, w.c1.sign_seed), 400, "malformed-envelope")
    extra: Any = copy.deepcopy(sealed.wire)
    extra["header"]["note"] = "x"
    await refused(w, w.c1, cj(extra), 400, "malformed-envelope")
    await refused(w, w.c1, b"[]", 400, "malformed-envelope")


async def test_commitment_mismatch_is_stored_opaque_and_alarms_the_recipient(
    msg_world: MsgWorld,
) -> None:
    """The server cannot check the key commitment (it never sees mk): it stores the
    envelope as it came; the recipient's checks raise the alarm."""
    w = msg_world
    sealed = w.seal(w.c1, [w.team])
    forged: Any = copy.deepcopy(sealed.wire)
    forged["header"]["commit"] = b64e(key_commitment(random_bytes(32)))
    body = resign(forged, w.c1.sign_seed)
    status, receipt = await w.post(w.c1, body)
    assert status == 201, receipt
    async with w.client.app[DB].read() as conn:
        stored = bytes((await conn.execute(select(schema.messages.c.wire))).scalar_one())
    assert stored == body
    key = w.home.team_key
    with pytest.raises(KeyCommitmentMismatch):
        open_message(
            stored,
            sth_check=lambda size, root: None,
            mailbox=w.team,
            keys={key.cert["kid"]: (box_keypair(key.sk)[0], key.sk)},
            sender=w.c1.identity_cert,
        )


# --- the clock, sizes, blobs, ids ------------------------------------------------------------
async def test_clock_skew(msg_world: MsgWorld) -> None:
    w = msg_world
    now = w.clock.now
    for created in (now - 5 * MIN - 1, now + 5 * MIN + 1):
        problem = await refused(
            w, w.c1, w.seal(w.c1, [w.team], created=created).body, 400, "clock-skew"
        )
        assert problem["server_time"] == now
    for created in (now - 5 * MIN, now + 5 * MIN):
        assert (await w.post(w.c1, w.seal(w.c1, [w.team], created=created).body))[0] == 201


async def test_body_over_the_limit(msg_world: MsgWorld) -> None:
    w = msg_world
    limit = w.client.app[SETTINGS].max_message_bytes
    before = await w.counts()
    status, problem = await w.post(w.c1, b"{" + b" " * limit + b"}")
    assert (status, code(problem)) == (413, "too-large")

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    resp = await w.client.post(
        MESSAGES, data=chunks(), headers={"Content-Type": "application/json", **w.c1.headers}
    )
    assert resp.status == 413
    assert await w.counts() == before


async def test_blobs_that_are_not_the_senders_own_complete_unused_upload(
    msg_world: MsgWorld,
) -> None:
    w = msg_world
    now = w.clock.now
    theirs = await w.add_blob(w.c2)
    incomplete = await w.add_blob(w.c1, state="uploading")
    expired = await w.add_blob(w.c1, expires=now - 1)
    unknown = {"id": new_id(), "size": theirs["size"], "hash": theirs["hash"]}
    used = await w.add_blob(w.c1)
    first = w.seal(w.c1, [w.team], blobs=[used], attachments=[attachment_for(used)])
    assert (await w.post(w.c1, first.body))[0] == 201

    details = set()
    for blob in (theirs, incomplete, expired, unknown, used):
        sealed = w.seal(w.c1, [w.team], blobs=[blob], attachments=[attachment_for(blob)])
        problem = await refused(w, w.c1, sealed.body, 400, "blob-unavailable")
        assert problem["blob"] == blob["id"]
        details.add(problem["detail"])
    assert len(details) == 1

    mine = await w.add_blob(w.c1)
    wrong_hash = dict(mine, hash=b64e(random_bytes(32)))
    wrong_size = await w.add_blob(w.c1, file_size=2000)
    wrong_size_claim = dict(wrong_size, size=mine["size"])
    for blob in (wrong_hash, wrong_size_claim):
        sealed = w.seal(w.c1, [w.team], blobs=[blob], attachments=[attachment_for(blob)])
        await refused(w, w.c1, sealed.body, 400, "blob-mismatch")


async def test_query_parameters(msg_world: MsgWorld) -> None:
    w = msg_world
    body = w.seal(w.c1, [w.team]).body
    for query, expected in (
        ("?procedure=" + new_id(), "missing-parameter"),
        ("?version=1", "missing-parameter"),
        ("?colour=blue", "unknown-parameter"),
        (f"?procedure={new_id()}&version=0", "invalid-parameter"),
        ("?procedure=abc&version=1", "invalid-parameter"),
    ):
        before = await w.counts()
        status, problem = await post(w.client, w.c1, body, query)
        assert (status, code(problem)) == (400, expected), query
        assert await w.counts() == before


async def test_a_case_refusal_fails_alone_and_stores_nothing(msg_world: MsgWorld) -> None:
    w = msg_world
    # an application without a case: refused by the cases hook after the rows were written,
    # so everything of it is rolled back
    sealed = w.seal(w.c1, [w.team], kind="application")
    await refused(w, w.c1, sealed.body, 400, "case-required")
    # a procedure on a plain message is refused the same way
    before = await w.counts()
    plain = w.seal(w.c1, [w.team]).body
    status, problem = await post(w.client, w.c1, plain, f"?procedure={new_id()}&version=1")
    assert (status, code(problem)) == (400, "procedure-unexpected")
    assert await w.counts() == before


# --- the session -------------------------------------------------------------------------------
async def test_a_send_on_an_ended_session_is_refused_by_the_batch(msg_world: MsgWorld) -> None:
    """The send route checks only the token; the group commit checks the session in the
    transaction that would store the message, so a logout (or revocation, or a disabled
    account) stops sends at once, with the same answer as every other route."""
    w = msg_world
    accepted = w.seal(w.c1, [w.team])
    got, _ = await w.post(w.c1, accepted.body)
    assert got == 201
    envelope = w.seal(w.c1, [w.team])
    resp = await w.client.post("/api/v1/auth/logout", headers=w.c1.headers)
    assert resp.status == 204
    problem = await refused(w, w.c1, envelope.body, 401, "session-ended")
    assert problem["status"] == 401
    # a resend of the message stored before is refused as well: nothing is answered to an
    # ended session, not even a stored receipt
    await refused(w, w.c1, accepted.body, 401, "session-ended")
    # the other citizen's session is untouched, in the same batch or not
    got, _ = await w.post(w.c2, w.seal(w.c2, [w.team]).body)
    assert got == 201
