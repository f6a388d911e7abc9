"""``client.inbox`` against the live server (both DBs): listing, opening with every
recipient check, the verified sender, attachments, team keys through wraps, moving and
deleting — and a server made to lie: each lie is refused with its reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.client import Tampering
from support.mailworld import ORG_NAME, MailWorld, Person, open_mail_world

from postbox.client.errors import NotFoundError, VerificationFailed
from postbox.client.inbox import OpenedMessage, OpenResult, Refused
from postbox.crypto import bundle
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.envelope import seal_message
from postbox.crypto.primitives import random_bytes


@pytest.fixture
def tampering() -> Tampering:
    return Tampering()


@pytest.fixture
async def tw(db_url: str, tmp_path: Path, tampering: Tampering) -> AsyncIterator[MailWorld]:
    async with open_mail_world(db_url, tmp_path, tampering=tampering) as world:
        yield world


def opened(result: OpenResult) -> OpenedMessage:
    assert isinstance(result, OpenedMessage), result
    return result


def refused(result: OpenResult) -> Refused:
    assert isinstance(result, Refused), result
    return result


async def citizen_writes(w: MailWorld, who: Person | None = None, **kw: Any) -> Any:
    person = who or w.citizen
    return await person.client.messages.send(
        person.keyring,
        to=[w.team],
        subject=kw.pop("subject", "Antrag auf Verlängerung"),
        body=kw.pop("body", "Sehr geehrte Damen und Herren, anbei mein Pass."),
        **kw,
    )


async def test_open_verify_and_work_the_mailbox(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    cw, cw2, cz = w.caseworker, w.caseworker2, w.citizen
    scan = tmp_path / "pass.pdf"
    scan.write_bytes(b"%PDF-1.7 " + random_bytes(70_000))
    sent = await citizen_writes(w, attachments=[scan])

    boxes = await cw2.client.inbox.mailboxes()
    assert [b.mailbox for b in boxes] == [cw2.account, w.team]
    assert boxes[1].kind == "team" and boxes[1].unread["inbox"] == 1
    page = await cw2.client.inbox.list(w.team)
    assert [m.ref for m in page.messages] == [(cz.account, sent.id)] and page.next is None
    summary = page.messages[0]
    assert (summary.blobs, summary.read, summary.folder) == (1, False, "inbox")

    msg = opened(await cw2.client.inbox.open(cw2.keyring, w.team, cz.account, sent.id))
    assert msg.sender.account == cz.account and msg.sender.kind == "citizen"
    assert msg.sender.team is None and msg.sender.org is None
    assert msg.sender.fingerprint == cz.identity_fingerprint
    assert msg.subject == "Antrag auf Verlängerung" and msg.body.endswith("mein Pass.")
    assert msg.thread == sent.thread and msg.digest == sent.digest
    assert msg.receipt is not None and msg.receipt_problem is None
    assert msg.receipt["accepted"] == sent.receipt["accepted"]
    saved = await cw2.client.inbox.save_attachment(msg, 0, tmp_path / "out")
    assert saved.name == "pass.pdf" and saved.read_bytes() == scan.read_bytes()
    # opening again is the same message (deduplicated on from + id)
    again = opened(await cw2.client.inbox.open(cw2.keyring, w.team, cz.account, sent.id))
    assert again.digest == msg.digest

    # the team answers: the citizen sees the team and the verified caseworker
    reply = await cw.client.messages.send(
        cw.keyring, to=[cz.account], from_=w.team, thread=sent.thread, subject="Re", body="Ok."
    )
    got = opened(await cz.client.inbox.open(cz.keyring, cz.account, w.team, reply.id))
    assert got.sender.team == w.team and got.sender.account == cw.account
    assert got.sender.kind == "caseworker" and got.sender.org == w.org
    assert got.sender.org_name == ORG_NAME
    assert "written by caseworker" in got.sender.describe()
    # the caseworker's colleague reads the team's sent copy
    mine = opened(await cw2.client.inbox.open(cw2.keyring, w.team, w.team, reply.id))
    assert mine.body == "Ok."
    # the citizen reads its own sent copy
    own = opened(await cz.client.inbox.open(cz.keyring, cz.account, cz.account, sent.id))
    assert own.sender.account == cz.account

    # read, flag, move, delete
    inbox = cw2.client.inbox
    s = await inbox.mark_read(w.team, cz.account, sent.id)
    assert s.read is True
    s = await inbox.flag(w.team, cz.account, sent.id)
    assert s.flagged is True
    assert [m.id for m in (await inbox.list(w.team, flagged=True)).messages] == [sent.id]
    s = await inbox.move(w.team, cz.account, sent.id, "archive")
    assert s.folder == "archive"
    listed = [x.id async for x in inbox.iterate(w.team, thread=sent.thread, limit=1)]
    assert sorted(listed) == sorted([sent.id, reply.id])
    await inbox.delete(w.team, cz.account, sent.id)
    with pytest.raises(NotFoundError):
        await inbox.fetch(w.team, cz.account, sent.id)
    assert (await cz.client.inbox.fetch(cz.account, cz.account, sent.id)).id == sent.id

    # retention (admins set it, every account of the org reads it)
    rule = await w.admin.client.inbox.set_retention(w.org, delete_after_days=90, trash_days=14)
    assert (rule.delete_after_days, rule.trash_days) == (90, 14)
    assert await cz.client.inbox.retention(w.org) == rule


async def test_team_keys_come_from_wraps_and_leavers_lose_access(mail_world: MailWorld) -> None:
    w = mail_world
    cw, cw2 = w.caseworker, w.caseworker2
    first = await citizen_writes(w)
    # a keyring without the team key (a fresh device): the wraps are fetched and opened
    stripped: dict[str, Any] = dict(cw2.keyring.private_keys)
    stripped["teams"] = []
    bare = cw2.keyring.with_keys(bundle.check_private_keys(stripped))
    assert bare.team_keys(w.team) == []
    msg = opened(await cw2.client.inbox.open(bare, w.team, w.citizen.account, first.id))
    assert msg.keyring.team_keys(w.team) != []

    # cw2 leaves; cw1 rotates the team key
    keyring, request = await cw.client.teams.request_removal(cw.keyring, w.team, cw2.account)
    approval = await w.admin.client.teams.approve(w.admin.keyring, request)
    await cw.client.teams.remove_and_rotate(keyring, approval)
    with pytest.raises(NotFoundError):
        await cw2.client.inbox.list(w.team)
    with pytest.raises(NotFoundError):
        await cw2.client.inbox.open(msg.keyring, w.team, w.citizen.account, first.id)
    # new mail is sealed to the new key; old mail still opens with the old one
    second = await citizen_writes(w, who=w.citizen2)
    for m in (first, second):
        got = opened(await cw.client.inbox.open(keyring, w.team, m.from_, m.id))
        assert got.sender.kind == "citizen"
    assert first.header["rcpt"] != second.header["rcpt"]


def _flip_b64(text: str) -> str:
    raw = bytearray(b64d(text))
    raw[len(raw) // 2] ^= 0x01
    return b64e(bytes(raw))


async def test_a_lying_server_is_caught(
    tw: MailWorld, tampering: Tampering, tmp_path: Path
) -> None:
    w, cw, cz = tw, tw.caseworker, tw.citizen
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF " + random_bytes(5_000))
    sent = await citizen_writes(w, attachments=[scan])
    other = await citizen_writes(w, who=w.citizen2)
    fetch_path = f"/api/v1/mailboxes/{w.team}/messages/{cz.account}/{sent.id}"
    inbox = cw.client.inbox

    async def lie(change: Any, path: str = fetch_path) -> OpenResult:
        def fn(p: str, body: Any) -> Any:
            return change(body) if p == path else body

        tampering.fn = fn
        try:
            return await inbox.open(cw.keyring, w.team, cz.account, sent.id)
        finally:
            tampering.fn = None

    def swap_team_kid(body: Any) -> Any:
        kid = b64e(random_bytes(16))
        for entry in (*body["wire"]["header"]["rcpt"], *body["wire"]["keys"]):
            if entry["mailbox"] == w.team:
                entry["kid"] = kid
        return body

    def keys_kid_differs(body: Any) -> Any:
        for entry in body["wire"]["keys"]:
            if entry["mailbox"] == w.team:
                entry["kid"] = b64e(random_bytes(16))
        return body

    def flip_ct(body: Any) -> Any:
        body["wire"]["ct"] = _flip_b64(body["wire"]["ct"])
        return body

    def later(body: Any) -> Any:
        body["wire"]["header"]["created"] += 1
        return body

    def other_thread(body: Any) -> Any:
        body["wire"]["header"]["thread"] = b64e(random_bytes(16))
        return body

    def swap_sealed(body: Any) -> Any:
        keys = body["wire"]["keys"]
        mine = next(k for k in keys if k["mailbox"] == w.team)
        theirs = next(k for k in keys if k["mailbox"] != w.team)
        mine["sealed"] = theirs["sealed"]
        return body

    other_wire = (await inbox.fetch(w.team, w.citizen2.account, other.id)).wire

    def another_message(body: Any) -> Any:
        body["wire"] = other_wire  # the server answers another message's envelope
        return body

    cases = [
        (swap_team_kid, "key-substitution", "KeySubstitution"),
        # keys must repeat rcpt: the structural check every party runs catches it first
        (keys_kid_differs, "malformed", "MalformedEnvelope"),
        (flip_ct, "bad-signature", "BadSignature"),
        (later, "bad-signature", "BadSignature"),
        (other_thread, "bad-signature", "BadSignature"),
        (swap_sealed, "decryption-failed", "DecryptionFailed"),
        (another_message, "wrong-message", "WrongMessage"),
    ]
    for change, reason, code in cases:
        r = refused(await lie(change))
        assert (r.reason, r.code, r.alarm) == (reason, code, True), (change.__name__, r)
        assert r.describe().startswith(f"ALARM: message {cz.account}/{sent.id} NOT verified")
        assert r.from_ == cz.account and r.id == sent.id

    # the signer's key chain with a leaf changed: its inclusion proof fails
    def forged_leaf(body: Any) -> Any:
        leaf = bytearray(b64d(body["events"][0]["leaf"]))
        leaf[-3] ^= 0x01
        body["events"][0]["leaf"] = b64e(bytes(leaf))
        return body

    r = refused(await lie(forged_leaf, f"/api/v1/keys/{cz.account}"))
    assert (r.reason, r.code, r.alarm) == ("key-log", "BadProof", True)

    # a pinned identity the log no longer shows (a server that replaced the signer's key)
    state = cw.client.session.state
    pinned = state.identities[cz.account]
    state.identities[cz.account] = b64e(random_bytes(16))
    try:
        r = refused(await inbox.open(cw.keyring, w.team, cz.account, sent.id))
        assert (r.reason, r.code, r.alarm) == ("identity-changed", "IdentityChanged", True)
    finally:
        state.identities[cz.account] = pinned

    await check_fork_alarm(w)

    # a forged receipt does not hide the (authentic) message, but it is reported
    def forged_receipt(body: Any) -> Any:
        body["receipt"]["receipt"]["accepted"] += 1
        return body

    msg = opened(await lie(forged_receipt))
    assert msg.receipt is None and msg.receipt_problem is not None
    assert msg.receipt_problem.startswith("BadSignature")

    # now the honest answer opens; the same (from, id) with other bytes is a duplicate
    msg = opened(await inbox.open(cw.keyring, w.team, cz.account, sent.id))
    r = refused(await lie(flip_ct))
    assert (r.reason, r.code) == ("duplicate-id", "DuplicateId")

    # an attachment changed at rest: refused before any plaintext is released
    folder = b64d(msg.attachments[0].blob).hex()  # the local store keeps parts per blob
    stored = [p for p in w.live.settings.blobs_dir.rglob("*") if p.is_file() and folder in str(p)]
    assert len(stored) == 1, stored
    data = bytearray(stored[0].read_bytes())
    data[100] ^= 0x01
    stored[0].write_bytes(bytes(data))
    out = tmp_path / "saved"
    out.mkdir()
    with pytest.raises(VerificationFailed):
        await inbox.save_attachment(msg, 0, out)
    assert list(out.iterdir()) == []


async def check_fork_alarm(w: MailWorld) -> None:
    """A sender shown another log (its content's tree head is not in ours) is a fork."""
    cz, cw = w.citizen, w.caseworker
    head = await cz.client.keys.tree_head()
    for sth in (
        {"size": head["size"], "root": b64e(random_bytes(32))},  # same size, other root
        {"size": 1, "root": b64e(random_bytes(32))},  # an older tree that is not our prefix
        {"size": head["size"] + 1000, "root": b64e(random_bytes(32))},  # a larger one
    ):
        recipients, _ = await cz.client.messages.recipient_keys(cz.keyring, cz.account, [w.team])
        sealed = seal_message(
            content={
                "subject": "Hallo",
                "body": "…",
                "format": "text",
                "form": None,
                "attachments": [],
                "in_reply_to": None,
                "sth": sth,
            },
            message_id=b64e(random_bytes(16)),
            kind="message",
            from_=cz.account,
            signer=cz.account,
            signer_seed=cz.keyring.identity.seed,
            to=[w.team],
            recipients=recipients,
            thread=None,
            case=None,
            created=cz.client.session.clock(),
        )
        await cz.client.session.call("POST", "/api/v1/messages", sealed.wire)
        h = sealed.wire["header"]
        r = refused(await cw.client.inbox.open(cw.keyring, w.team, h["from"], h["id"]))
        assert (r.reason, r.code, r.alarm) == ("fork", "ForkDetected", True), (sth, r)
