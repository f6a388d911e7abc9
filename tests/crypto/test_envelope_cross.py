"""Python seals → JavaScript opens, and JavaScript seals → Python opens."""

from __future__ import annotations

from typing import Any

from support.node import run_tool
from support.world import NOW, World, ident, seed

from postbox.crypto import envelope
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.errors import CryptoError

BODIES = ["", "Guten Tag", "مرحبا 🙂 Привіт — ğüşıöç", "x" * 4096, "ä" * 300_000]


def _content(body: str, i: int) -> dict[str, Any]:
    return {
        "subject": f"Betreff {i} \u202e",
        "body": body,
        "format": "text",
        "form": None,
        "attachments": [],
        "in_reply_to": None,
        "sth": {"size": i + 1, "root": b64e(seed(f"root{i}"))},
    }


def test_python_seals_javascript_opens(world: World) -> None:
    assert world.citizen.sign_seed is not None
    messages = []
    expected = []
    for i, body in enumerate(BODIES):
        sealed = envelope.seal_message(
            content=_content(body, i),
            message_id=ident(f"py-{i}"),
            kind="message",
            from_=world.citizen.id,
            signer=world.citizen.id,
            signer_seed=world.citizen.sign_seed,
            to=[world.team.id],
            recipients={world.citizen.id: world.citizen.enc, world.team.id: world.team.enc},
            thread=None,
            case=None,
            created=NOW,
        )
        messages.append(
            {
                "body": b64e(sealed.body),
                "mailbox": world.team.id,
                "recipient_pk": b64e(world.team.enc_pk),
                "recipient_sk": b64e(world.team.enc_sk),
                "sender": world.citizen.identity,
                "sender_team_org": None,
            }
        )
        expected.append((cj(_content(body, i)), sealed.digest))
    # one tampered message must be refused by name on the other side too
    bad = dict(messages[1])
    raw = bytearray(b64d(bad["body"]))
    raw[-5] ^= 1
    bad["body"] = b64e(bytes(raw))
    results = run_tool("envelope_cross.mjs", "open", payload={"messages": [*messages, bad]})
    for (content, digest), got in zip(expected, results, strict=False):
        assert got["ok"], got
        assert b64d(got["content"]) == content
        assert b64d(got["digest"]) == digest
    # ... and by the same error name as in Python
    assert world.citizen.identity is not None
    try:
        envelope.open_message(
            b64d(bad["body"]),
            mailbox=world.team.id,
            keys=world.team.keys,
            sender=world.citizen.identity,
            sth_check=lambda size, root: None,
        )
    except CryptoError as exc:
        python_error = type(exc).__name__
    assert results[-1] == {"ok": False, "error": python_error}


def test_javascript_seals_python_opens(world: World) -> None:
    assert world.caseworker.sign_seed is not None
    assert world.caseworker.identity is not None
    messages = [
        {
            "args": {
                "content": _content(body, i),
                "messageId": ident(f"js-{i}"),
                "kind": "decision" if i == 2 else "message",
                "from": world.team.id,
                "signer": world.caseworker.id,
                "signerSeed": b64e(world.caseworker.sign_seed),
                "to": [world.citizen.id],
                "recipients": {world.citizen.id: world.citizen.enc, world.team.id: world.team.enc},
                "thread": ident("thread"),
                "caseId": ident("case"),
                "created": NOW,
            }
        }
        for i, body in enumerate(BODIES)
    ]
    results = run_tool("envelope_cross.mjs", "seal", payload={"messages": messages})
    for i, (body, got) in enumerate(zip(BODIES, results, strict=True)):
        for mailbox, keys in (
            (world.citizen.id, world.citizen.keys),
            (world.team.id, world.team.keys),
        ):
            opened = envelope.open_message(
                b64d(got["body"]),
                mailbox=mailbox,
                keys=keys,
                sender=world.caseworker.identity,
                sender_team_org=world.org,
                sth_check=lambda size, root: None,
            )
            assert opened.content == _content(body, i)
            assert opened.digest == b64d(got["digest"])
