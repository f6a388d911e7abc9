"""Message envelope: round trips, every recipient check in order, tamper tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.world import NOW, World, ident, seed

from postbox.crypto import certs, envelope, errors
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.envelope import Sealed
from postbox.crypto.primitives import seal, sign_keypair

ROOT = b64e(seed("root"))
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def content(subject: str = "Verlängerung", body: str = "Guten Tag", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "subject": subject,
        "body": body,
        "format": "text",
        "form": None,
        "attachments": [],
        "in_reply_to": None,
        "sth": {"size": 7, "root": ROOT},
    }
    c.update(extra)
    return c


def no_fork(size: int, root: bytes) -> None:
    return None


def citizen_to_team(w: World, c: dict[str, Any] | None = None, **kw: Any) -> Sealed:
    assert w.citizen.sign_seed is not None
    args: dict[str, Any] = {
        "content": c or content(),
        "message_id": ident("msg-1"),
        "kind": "message",
        "from_": w.citizen.id,
        "signer": w.citizen.id,
        "signer_seed": w.citizen.sign_seed,
        "to": [w.team.id],
        "recipients": {w.citizen.id: w.citizen.enc, w.team.id: w.team.enc},
        "thread": None,
        "case": None,
        "created": NOW,
    }
    args.update(kw)
    return envelope.seal_message(**args)


def team_to_citizen(w: World, kind: envelope.Kind = "message", **kw: Any) -> Sealed:
    assert w.caseworker.sign_seed is not None
    args: dict[str, Any] = {
        "content": content("Ihr Antrag", "Bescheid anbei"),
        "message_id": ident("msg-2"),
        "kind": kind,
        "from_": w.team.id,
        "signer": w.caseworker.id,
        "signer_seed": w.caseworker.sign_seed,
        "to": [w.citizen.id],
        "recipients": {w.citizen.id: w.citizen.enc, w.team.id: w.team.enc},
        "thread": ident("thread"),
        "case": ident("case"),
        "created": NOW,
    }
    args.update(kw)
    return envelope.seal_message(**args)


def open_as_team(w: World, wire: Any, **kw: Any) -> envelope.Opened:
    assert w.citizen.identity is not None
    args: dict[str, Any] = {
        "mailbox": w.team.id,
        "keys": w.team.keys,
        "sender": w.citizen.identity,
        "sth_check": no_fork,
    }
    args.update(kw)
    return envelope.open_message(wire, **args)


def open_as_citizen(w: World, wire: Any, **kw: Any) -> envelope.Opened:
    assert w.caseworker.identity is not None
    args: dict[str, Any] = {
        "mailbox": w.citizen.id,
        "keys": w.citizen.keys,
        "sender": w.caseworker.identity,
        "sth_check": no_fork,
        "sender_team_org": w.org,
    }
    args.update(kw)
    return envelope.open_message(wire, **args)


def test_round_trip_both_directions_and_sent_copy(world: World) -> None:
    sealed = citizen_to_team(world)
    opened = open_as_team(world, sealed.body)
    assert opened.content["subject"] == "Verlängerung"
    assert opened.digest == sealed.digest
    assert not opened.from_team
    # the sender's own copy (sent folder) opens with the sender's key
    own = open_as_team(world, sealed.body, mailbox=world.citizen.id, keys=world.citizen.keys)
    assert own.content == opened.content

    reply = team_to_citizen(world, kind="decision")
    got = open_as_citizen(world, reply.body)
    assert got.from_team and got.header["kind"] == "decision"
    assert got.sender["kind"] == "caseworker"


def test_header_layout_follows_the_protocol(world: World) -> None:
    sealed = citizen_to_team(world)
    h = sealed.wire["header"]
    assert [r["mailbox"] for r in h["rcpt"]] == sorted([world.citizen.id, world.team.id])
    assert [(k["mailbox"], k["kid"]) for k in sealed.wire["keys"]] == [
        (r["mailbox"], r["kid"]) for r in h["rcpt"]
    ]
    assert h["sender_kid"] == world.citizen.enc_signed["by"]
    assert sealed.body == cj(sealed.wire)
    assert envelope.parse_wire(sealed.body) == sealed.wire
    ct = b64d(sealed.wire["ct"])
    assert len(ct) == 256 + 16  # a short message pads to the 256-byte floor


def test_server_side_checks(world: World) -> None:
    sealed = citizen_to_team(world)
    wire = envelope.parse_wire(sealed.body)
    assert world.citizen.identity is not None and world.other_citizen.identity is not None
    assert envelope.verify_signature(wire, world.citizen.identity) == sealed.digest
    with pytest.raises(errors.CertificateInvalid):
        envelope.verify_signature(wire, world.other_citizen.identity)
    with pytest.raises(errors.NonCanonical):
        envelope.parse_wire(sealed.body.replace(b"{", b"{ ", 1))


def test_check_order_not_a_recipient_first(world: World) -> None:
    sealed = citizen_to_team(world)
    with pytest.raises(errors.NotARecipient):
        open_as_team(
            world, sealed.body, mailbox=world.other_citizen.id, keys=world.other_citizen.keys
        )


def test_key_substitution_alarm(world: World) -> None:
    # The server swaps the team's key for one it controls: the team does not hold that kid.
    evil_pk, evil_sk = world.other_citizen.enc_pk, world.other_citizen.enc_sk
    evil = certs.make_cert(
        subject=world.team.id,
        kind="team",
        org=world.org,
        use="encrypt",
        pk=evil_pk,
        created=NOW,
        expires=NOW + 1000,
    )
    sealed = citizen_to_team(
        world, recipients={world.citizen.id: world.citizen.enc, world.team.id: evil}
    )
    with pytest.raises(errors.KeySubstitution):
        open_as_team(world, sealed.body)
    # a held key whose kid does not match its public key is also refused
    bad_keys = {world.team.enc["kid"]: (evil_pk, evil_sk)}
    with pytest.raises(errors.KeySubstitution):
        open_as_team(world, citizen_to_team(world).body, keys=bad_keys)


def test_sender_certificate_rules(world: World) -> None:
    sealed = citizen_to_team(world)
    assert world.other_citizen.identity is not None and world.citizen.identity is not None
    with pytest.raises(errors.CertificateInvalid):
        open_as_team(world, sealed.body, sender=world.other_citizen.identity)
    revoked = certs.make_revocation(
        subject=world.citizen.id,
        kid=world.citizen.identity["kid"],
        at=NOW - 1,
        reason="compromised",
        signer_seed=seed("sign/citizen"),
    )
    with pytest.raises(errors.CertificateRevoked):
        open_as_team(world, sealed.body, revocations=[revoked["revoke"]])
    late = citizen_to_team(world, created=NOW - 5)  # before the certificate existed
    with pytest.raises(errors.CertificateExpired):
        open_as_team(world, late.body)


def test_team_messages_need_the_teams_org(world: World) -> None:
    reply = team_to_citizen(world)
    with pytest.raises(errors.CertificateInvalid):
        open_as_citizen(world, reply.body, sender_team_org=ident("another-org"))
    with pytest.raises(errors.CertificateInvalid):
        open_as_citizen(world, reply.body, sender_team_org=None)  # signer != from


def test_legally_effective_kinds(world: World) -> None:
    assert world.citizen.sign_seed is not None
    decision_by_citizen = citizen_to_team(world, kind="decision", case=ident("case"))
    with pytest.raises(errors.CertificateInvalid):
        open_as_team(world, decision_by_citizen.body)
    withdrawal = citizen_to_team(world, kind="withdrawal", case=ident("case"))
    assert open_as_team(world, withdrawal.body).header["kind"] == "withdrawal"
    with pytest.raises(errors.MalformedEnvelope):
        citizen_to_team(world, kind="withdrawal", case=None)
    with pytest.raises(errors.CertificateInvalid):
        open_as_citizen(world, team_to_citizen(world, kind="withdrawal").body)


def test_identity_change_needs_a_link(world: World) -> None:
    sealed = citizen_to_team(world)
    assert world.citizen.identity is not None and world.citizen.identity_signed is not None
    old_seed = seed("old-identity/citizen")
    old_pk, _ = sign_keypair(old_seed)
    pinned = certs.make_cert(
        subject=world.citizen.id, kind="citizen", org=None, use="sign", pk=old_pk, created=NOW - 10
    )
    with pytest.raises(errors.IdentityChanged):
        open_as_team(world, sealed.body, pinned=pinned)
    with pytest.raises(errors.IdentityChanged):
        open_as_team(world, sealed.body, pinned=pinned, sender_signed=world.citizen.identity_signed)
    linked = certs.link_rotation(world.citizen.identity_signed, old_seed)
    assert open_as_team(world, sealed.body, pinned=pinned, sender_signed=linked)


def test_fork_check_runs_last_and_blocks(world: World) -> None:
    sealed = citizen_to_team(world)
    seen: list[tuple[int, bytes]] = []

    def fork(size: int, root: bytes) -> None:
        seen.append((size, root))
        raise errors.ForkDetected("different log")

    with pytest.raises(errors.ForkDetected):
        open_as_team(world, sealed.body, sth_check=fork)
    assert seen == [(7, b64d(ROOT))]


async def test_async_open(world: World) -> None:
    sealed = citizen_to_team(world)
    assert world.citizen.identity is not None

    async def check(size: int, root: bytes) -> None:
        assert size == 7

    opened = await envelope.open_message_async(
        sealed.body,
        mailbox=world.team.id,
        keys=world.team.keys,
        sender=world.citizen.identity,
        sth_check=check,
    )
    assert opened.content["body"] == "Guten Tag"


def test_key_commitment_mismatch(world: World) -> None:
    # A sender (or the server) re-seals a different mk to one recipient: the AEAD would
    # not open anyway, but the commitment catches it first and by name.
    sealed = citizen_to_team(world)
    wire = copy.deepcopy(sealed.wire)
    other_mk = seed("other-mk")
    for k in wire["keys"]:
        if k["mailbox"] == world.team.id:
            k["sealed"] = b64e(seal(other_mk, world.team.enc_pk))
    with pytest.raises(errors.KeyCommitmentMismatch):
        open_as_team(world, wire)


def test_attachments_must_follow_blobs(world: World) -> None:
    blob = {"id": ident("blob"), "size": 24 + 256 + 17, "hash": b64e(seed("h"))}
    att = {
        "blob": blob["id"],
        "name": "Pass.pdf",
        "type": "application/pdf",
        "size": 3,
        "key": b64e(seed("k")),
    }
    sealed = citizen_to_team(world, content(attachments=[att]), blobs=[blob])
    opened = open_as_team(world, sealed.body)
    assert opened.attachments[0].name == "Pass.pdf"
    assert opened.attachments[0].blob_size == blob["size"]
    with pytest.raises(errors.MalformedEnvelope):
        citizen_to_team(world, content(attachments=[att]), blobs=[])
    for bad in ["..", "a/b", "a\\b", "x\x00", "tab\there", "e\u0301"]:
        with pytest.raises(errors.MalformedObject):
            citizen_to_team(world, content(attachments=[{**att, "name": bad}]), blobs=[blob])


def test_form_data_has_no_numbers(world: World) -> None:
    form = {
        "procedure": ident("proc"),
        "version": 1,
        "digest": b64e(seed("d", 64)),
        "data": {"name": "Ayşe", "children": "2", "consent": True},
    }
    opened = open_as_team(world, citizen_to_team(world, content(form=form)).body)
    assert opened.content["form"] == form
    with pytest.raises(errors.MalformedObject):
        citizen_to_team(world, content(form={**form, "data": {"children": 2}}))


def test_structural_rejections(world: World) -> None:
    sealed = citizen_to_team(world)
    cases: list[Callable[[dict[str, Any]], None]] = [
        lambda w: w["header"]["rcpt"].reverse(),
        lambda w: w["keys"].reverse(),
        lambda w: w["header"]["to"].append(w["header"]["to"][0]),
        lambda w: w["header"].update(extra=1),
        lambda w: w["header"].pop("thread"),
        lambda w: w.update(ct=b64e(b"short")),
        lambda w: w["header"].update(v=2),
        lambda w: w["header"].update(kind="letter"),
        lambda w: w["keys"][0].update(kid=w["keys"][1]["kid"]),
    ]
    for mutate in cases:
        wire = copy.deepcopy(sealed.wire)
        mutate(wire)  # type: ignore[arg-type]
        with pytest.raises(errors.MalformedEnvelope):
            open_as_team(world, cj(wire))


def _flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


@pytest.mark.parametrize("field", ["nonce", "ct", "signature"])
def test_flip_every_byte_of_signed_parts(world: World, field: str) -> None:
    sealed = citizen_to_team(world)
    raw = b64d(sealed.wire[field])  # type: ignore[literal-required]
    for i in range(len(raw)):
        wire = copy.deepcopy(sealed.wire)
        wire[field] = b64e(_flip(raw, i))  # type: ignore[literal-required]
        with pytest.raises(errors.BadSignature):
            open_as_team(world, wire)


def test_flip_every_byte_of_the_sealed_key(world: World) -> None:
    sealed = citizen_to_team(world)
    idx = [k["mailbox"] for k in sealed.wire["keys"]].index(world.team.id)
    raw = b64d(sealed.wire["keys"][idx]["sealed"])
    for i in range(len(raw)):
        wire = copy.deepcopy(sealed.wire)
        wire["keys"][idx]["sealed"] = b64e(_flip(raw, i))
        with pytest.raises(errors.DecryptionFailed):
            open_as_team(world, wire)


def test_flip_every_byte_of_the_header(world: World) -> None:
    """Any change of the header's bytes is refused, by the first check that it breaks."""
    sealed = citizen_to_team(world)
    body = sealed.body
    start = body.index(b'"header":') + len(b'"header":')
    end = start + len(cj(sealed.wire["header"]))
    allowed = (
        errors.NonCanonical,
        errors.MalformedEnvelope,
        errors.NotARecipient,
        errors.KeySubstitution,
        errors.CertificateInvalid,
        errors.CertificateExpired,
        errors.BadSignature,
    )
    for i in range(start, end):
        with pytest.raises(allowed):
            open_as_team(world, _flip(body, i))
    # and every field, decoded, changes the digest: a changed header fails the signature
    header_fields = ["id", "thread", "created"]
    for name in header_fields:
        wire = copy.deepcopy(sealed.wire)
        h: dict[str, Any] = dict(wire["header"])
        h[name] = ident("x") if name != "created" else NOW + 1
        wire["header"] = h  # type: ignore[typeddict-item]
        with pytest.raises(errors.BadSignature):
            open_as_team(world, wire)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(subject=st.text(max_size=300), body=st.text(max_size=5000))
def test_round_trip_any_unicode(world: World, subject: str, body: str) -> None:
    if len(subject.encode()) > envelope.MAX_SUBJECT_BYTES:
        return
    opened = open_as_team(world, citizen_to_team(world, content(subject, body)).body)
    assert (opened.content["subject"], opened.content["body"]) == (subject, body)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.sampled_from([0, 1, 200, 4096, 65_536, 1_000_000]))
def test_round_trip_sizes(world: World, size: int) -> None:
    body = "ä" * (size // 2)
    opened = open_as_team(world, citizen_to_team(world, content(body=body)).body)
    assert opened.content["body"] == body
