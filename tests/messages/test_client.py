"""``client.messages`` against a live server (``support.mailworld``, both databases):
compose, seal, send, verify the receipt; replies in a thread; resend safety; a re-seal after
``stale-key``; and the recipient's alarm on an envelope whose key commitment is forged."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from support.mailworld import MailWorld, Person

from postbox.client.errors import ConflictError
from postbox.client.keyring import Keyring
from postbox.client.messages import SentMessage
from postbox.client.teams import Approval, TeamRequest
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.envelope import (
    Opened,
    key_commitment,
    message_digest,
    open_message,
)
from postbox.crypto.errors import KeyCommitmentMismatch
from postbox.crypto.primitives import box_keypair, random_bytes, sign
from postbox.mailbox.appkeys import DB
from postbox.mailbox.db import schema


async def fetch_and_open(w: MailWorld, reader: Person, mailbox: str, sent: Any) -> Opened:
    """What a recipient's client does: fetch the envelope and run every §5 check."""
    h = sent.header if isinstance(sent, SentMessage) else sent
    answer = await reader.client.session.call(
        "GET", f"/api/v1/mailboxes/{mailbox}/messages/{h['from']}/{h['id']}"
    )
    return await open_wire(w, reader, mailbox, answer["wire"], h)


def _keys(keyring: Keyring, mailbox: str) -> dict[str, tuple[bytes, bytes]]:
    if mailbox == keyring.account:
        return {k.kid: (k.pk, k.sk) for k in keyring.encryption_keys}
    return {k.kid: (box_keypair(k.sk)[0], k.sk) for k in keyring.team_keys(mailbox)}


async def open_wire(w: MailWorld, reader: Person, mailbox: str, wire: Any, h: Any) -> Opened:
    """Open with the reader's keys and the signer's identity as the reader's client
    verified it from the log."""
    sender = (await reader.client.keys.subject(h["signer"])).state.identity
    assert sender is not None
    return open_message(
        wire,
        sth_check=lambda size, root: None,
        mailbox=mailbox,
        keys=_keys(reader.keyring, mailbox),
        sender=sender,
        sender_team_org=w.org if h["from"] == w.team else None,
    )


@pytest.fixture
async def world(mail_world: MailWorld) -> MailWorld:
    return mail_world


async def test_citizen_to_team_and_a_reply_in_the_thread(world: MailWorld, tmp_path: Any) -> None:
    w = world
    citizen, cw = w.citizen, w.caseworker
    doc = tmp_path / "Reisepass.pdf"
    doc.write_bytes(random_bytes(70_000))
    sent = await citizen.client.messages.send(
        citizen.keyring,
        to=[w.team],
        subject="Verlängerung",
        body="Bitte um Verlängerung meines Aufenthaltstitels.",
        attachments=[doc],
    )
    assert sent.receipt["message"] == sent.id and sent.thread is not None
    assert len(sent.header["blobs"]) == 1 and not sent.resealed

    opened = await fetch_and_open(w, cw, w.team, sent)
    assert opened.content["subject"] == "Verlängerung"
    assert opened.attachments[0].name == "Reisepass.pdf"
    assert opened.content["sth"]["size"] >= 1

    reply = await cw.client.messages.send(
        cw.keyring,
        from_=w.team,
        to=[citizen.account],
        subject="AW: Verlängerung",
        body="Wir prüfen Ihren Antrag.",
        thread=sent.thread,
        in_reply_to=sent.id,
    )
    assert reply.thread == sent.thread and reply.header["signer"] == cw.account
    back = await fetch_and_open(w, citizen, citizen.account, reply)
    assert back.content["in_reply_to"] == sent.id and back.from_team
    # the sent copy is readable by the other team member (sealed to the team key)
    mine = await fetch_and_open(w, w.caseworker2, w.team, reply)
    assert mine.content["body"] == "Wir prüfen Ihren Antrag."


async def test_posting_the_same_outgoing_again_is_safe(world: MailWorld) -> None:
    w = world
    c = w.citizen
    out = await c.client.messages.compose(c.keyring, to=[w.team], subject="s", body="b")
    first = await c.client.messages.post(c.keyring, out)
    again = await c.client.messages.post(c.keyring, out)  # e.g. after a lost answer
    assert again.signed_receipt == first.signed_receipt
    async with w.live.app[DB].read() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.messages))).scalar_one()
    assert count == 1


async def test_stale_key_seals_again_once(world: MailWorld) -> None:
    w = world
    c, cw, admin = w.citizen, w.caseworker, w.admin
    out = await c.client.messages.compose(c.keyring, to=[w.team], subject="s", body="b")

    async def approver(request: TeamRequest) -> Approval:
        return await admin.client.teams.approve(admin.keyring, request)

    cw.keyring, _ = await cw.client.teams.rotate(cw.keyring, w.team, approver)
    new_kid = cw.keyring.team_keys(w.team)[-1].kid
    assert out.header["rcpt"][0]["kid"] != new_kid or out.header["rcpt"][1]["kid"] != new_kid

    sent = await c.client.messages.post(c.keyring, out)
    assert sent.resealed and sent.id == out.id
    assert {r["kid"] for r in sent.header["rcpt"] if r["mailbox"] == w.team} == {new_kid}
    opened = await fetch_and_open(w, cw, w.team, sent)
    assert opened.content["body"] == "b"


async def test_a_forged_commitment_is_stored_and_alarms_the_recipient(world: MailWorld) -> None:
    w = world
    c = w.citizen
    out = await c.client.messages.compose(c.keyring, to=[w.team], subject="s", body="b")
    wire: Any = copy.deepcopy(out.sealed.wire)
    wire["header"]["commit"] = b64e(key_commitment(random_bytes(32)))
    digest = message_digest(wire["header"], b64d(wire["nonce"], 24), b64d(wire["ct"]))
    wire["signature"] = b64e(sign(c.keyring.identity.seed, digest))
    answer = await c.client.session.call("POST", "/api/v1/messages", wire)
    assert answer["receipt"]["message"] == out.id
    fetched = await w.caseworker.client.session.call(
        "GET", f"/api/v1/mailboxes/{w.team}/messages/{c.account}/{out.id}"
    )
    assert cj(fetched["wire"]) == cj(wire)  # stored opaque, served as it came
    with pytest.raises(KeyCommitmentMismatch):
        await open_wire(w, w.caseworker, w.team, fetched["wire"], wire["header"])


async def test_other_refusals_surface_as_problems(world: MailWorld) -> None:
    w = world
    c = w.citizen
    out = await c.client.messages.compose(c.keyring, to=[w.team], subject="s", body="b")
    await c.client.messages.post(c.keyring, out)
    other = await c.client.messages.compose(
        c.keyring, to=[w.team], subject="s", body="other", message_id=out.id
    )
    with pytest.raises(ConflictError) as info:
        await c.client.messages.post(c.keyring, other)
    assert info.value.code == "message-id-reused"


class LosesFirstAnswer:
    """A proxy in front of the live server that forwards everything, but cuts the
    connection instead of delivering the server's answer to the first send (the message
    is stored; the client never hears so)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.lost = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            data = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            status = answer.status
        if request.method == "POST" and request.path == "/api/v1/messages" and not self.lost:
            self.lost += 1
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("answer lost on purpose")
        return web.Response(body=data, status=status, headers=out)


HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def test_a_lost_answer_is_resent_with_the_same_bytes(
    world: MailWorld, aiohttp_server: Any
) -> None:
    w = world
    c = w.citizen
    proxy = LosesFirstAnswer(w.url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    # this client's requests now go through the proxy (the server, its origin and the
    # client's pins are unchanged)
    c.client.session.transport.base_url = str(server.make_url("")).rstrip("/")
    out = await c.client.messages.compose(c.keyring, to=[w.team], subject="s", body="b")
    sent = await c.client.messages.post(c.keyring, out)
    assert proxy.lost == 1
    assert sent.id == out.id and sent.digest == out.sealed.digest
    async with w.live.app[DB].read() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.messages))).scalar_one()
    assert count == 1
