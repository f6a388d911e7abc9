"""Key verification of the client against a scriptable log: pins, heads, forks, chains."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fakelog import FakeLog, FakeServer, fake_server
from support.world import NOW, YEAR, World, seed

from postbox.client import Client, Pins
from postbox.client.errors import FingerprintMismatch, PinMismatch, VerificationFailed
from postbox.client.keys import cert_fingerprint
from postbox.crypto import certs
from postbox.crypto.primitives import sign_keypair


def client(fake: FakeServer, state: Path, **kw: object) -> Client:
    return Client(fake.url, state_dir=state, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


def add_citizen(log: FakeLog, world: World) -> str:
    c = world.citizen
    assert c.identity_signed is not None
    log.append(c.id, "identity", c.identity_signed)
    log.append(c.id, "key", c.enc_signed)
    return c.id


def add_org(log: FakeLog, world: World) -> None:
    signed_root = certs.make_org_root(
        org=world.org, name="Stadt Nürnberg", root_seed=world.root_seed, created=NOW
    )
    log.append(world.org, "org_root", signed_root)
    assert world.admin.identity_signed is not None
    log.append(world.org, "admin_key", world.admin.identity_signed)
    for party in (world.admin, world.caseworker):
        assert party.identity_signed is not None
        log.append(party.id, "identity", party.identity_signed)
        log.append(party.id, "key", party.enc_signed)


async def test_first_contact_pins_the_server_and_checks_leaf_0(
    world: World, tmp_path: Path
) -> None:
    async with fake_server(FakeLog()) as fake:
        async with client(fake, tmp_path) as c:
            info = await c.connect()
            assert c.session.first_contact
            assert info.log_pk == fake.log.log_pk
            assert c.session.state.server_checked
            assert c.session.state.sth is not None and c.session.state.sth["size"] == 1
        async with client(fake, tmp_path) as again:
            await again.connect()
            assert not again.session.first_contact


async def test_a_server_whose_keys_changed_is_refused(tmp_path: Path) -> None:
    async with fake_server(FakeLog()) as fake:
        async with client(fake, tmp_path) as c:
            await c.connect()
        fake.announce_log_pk = sign_keypair(seed("another log"))[0]
        async with client(fake, tmp_path) as c:
            with pytest.raises(PinMismatch, match="SERVER KEYS CHANGED"):
                await c.connect()


async def test_explicit_pins_are_required_to_match(tmp_path: Path) -> None:
    async with fake_server(FakeLog()) as fake:
        other = sign_keypair(seed("other"))[0]
        async with client(fake, tmp_path, pins=Pins(other, other)) as c:
            with pytest.raises(PinMismatch):
                await c.connect()
        right = Pins(fake.log.log_pk, sign_keypair(fake.log.receipt_seed)[0])
        async with client(fake, tmp_path / "b", pins=right) as c:
            await c.connect()
            assert not c.session.first_contact


async def test_a_leaf_0_naming_other_keys_is_refused(tmp_path: Path) -> None:
    log = FakeLog()
    async with fake_server(log) as fake:
        # the server announces (and signs heads with) a key that leaf 0 does not name
        fake.serving = FakeLog(log_seed=seed("impostor"), receipt_seed=log.receipt_seed)
        impostor = fake.serving
        fake.serving.chains.clear()
        fake.serving.tree = log.tree
        fake.serving.leaves = log.leaves
        async with client(fake, tmp_path) as c:
            with pytest.raises(PinMismatch, match="leaf 0"):
                await c.connect()
        assert impostor.log_pk != log.log_pk


async def test_a_citizen_chain_verifies_and_its_identity_is_pinned(
    world: World, tmp_path: Path
) -> None:
    log = FakeLog()
    subject = add_citizen(log, world)
    async with fake_server(log) as fake, client(fake, tmp_path) as c:
        verified = await c.keys.subject(subject)
        assert verified.state.kind == "account"
        assert verified.state.current_encryption(NOW)["kid"] == world.citizen.enc["kid"]
        assert verified.identity is not None
        assert c.session.state.identities[subject] == verified.identity["kid"]
        assert c.session.state.chains[subject]["seq"] == 1
        assert cert_fingerprint(verified.identity) == certs.fingerprint(
            sign_keypair(world.citizen.sign_seed or b"")[0]
        )


async def test_heads_advance_with_consistency_proofs_and_forks_are_caught(
    world: World, tmp_path: Path
) -> None:
    log = FakeLog()
    subject = add_citizen(log, world)
    async with fake_server(log) as fake, client(fake, tmp_path) as c:
        await c.keys.subject(subject)
        stored = c.session.state.sth
        assert stored is not None and stored["size"] == 3
        # the log grows honestly: the client demands and checks a consistency proof
        other = world.other_citizen
        assert other.identity_signed is not None
        log.append(other.id, "identity", other.identity_signed)
        await c.keys.subject(other.id)
        assert c.session.state.sth is not None and c.session.state.sth["size"] == 4
        # an older head that is a prefix of ours is fine, and ours does not move back
        log.head_size = 3
        await c.keys.subject(subject)
        assert c.session.state.sth["size"] == 4
        log.head_size = None
        # a fork of the same size: another 4th leaf
        forked = log.fork()
        forked.leaves.pop()
        forked.tree = type(log.tree)()
        forked.tree.extend(forked.leaves)
        del forked.chains[other.id]
        forked.append(world.caseworker.id, "identity", other.identity_signed)  # any leaf
        fake.serving = forked
        with pytest.raises(VerificationFailed) as caught:
            await c.keys.subject(subject)
        assert caught.value.code == "ForkDetected"
        # ... and a fork that grew further fails its consistency proof
        forked.append(world.other_citizen.id, "identity", other.identity_signed)
        with pytest.raises(VerificationFailed) as caught:
            await c.keys.subject(subject)
        assert caught.value.code == "ForkDetected"


async def test_a_withheld_chain_tail_is_caught(world: World, tmp_path: Path) -> None:
    log = FakeLog()
    subject = add_citizen(log, world)
    async with fake_server(log) as fake, client(fake, tmp_path) as c:
        await c.keys.subject(subject)
        log.withhold[subject] = 1
        with pytest.raises(VerificationFailed) as caught:
            await c.keys.subject(subject)
        assert caught.value.code == "ForkDetected"


async def test_an_unlinked_identity_change_is_refused_a_linked_one_accepted(
    world: World, tmp_path: Path
) -> None:
    log = FakeLog()
    subject = add_citizen(log, world)
    c0 = world.citizen
    assert c0.sign_seed is not None and c0.identity is not None
    new_seed = seed("citizen/rotated")
    new_cert = certs.make_cert(
        subject=subject,
        kind="citizen",
        org=None,
        use="sign",
        pk=sign_keypair(new_seed)[0],
        created=NOW + 1,
    )
    forged = log.fork()
    forged.append(subject, "identity", certs.sign_cert(new_cert, new_seed), ts=NOW + 1)
    async with fake_server(log) as fake:
        async with client(fake, tmp_path / "a") as c:
            await c.keys.subject(subject)
            # the honest log carries a rotation linked by the old key: accepted, pin moves
            linked = certs.link_rotation(certs.sign_cert(new_cert, new_seed), c0.sign_seed)
            log.append(subject, "identity", linked, ts=NOW + 1)
            verified = await c.keys.subject(subject)
            assert verified.identity is not None and verified.identity["kid"] == new_cert["kid"]
            assert c.session.state.identities[subject] == new_cert["kid"]
        # a log with the same new key but no link is what a substitution looks like
        fake.serving = forged
        async with client(fake, tmp_path / "b") as c:
            with pytest.raises(VerificationFailed) as caught:
                await c.keys.subject(subject)
            assert caught.value.code == "IdentityChanged"


async def test_staff_and_team_chains_check_the_pinned_org_root(
    world: World, tmp_path: Path
) -> None:
    log = FakeLog()
    add_org(log, world)
    team = world.team
    log.append(team.id, "key", team.enc_signed)
    assert world.admin.sign_seed is not None
    membership = certs.sign_membership(
        team=team.id, member=world.caseworker.id, at=NOW, admin_seed=world.admin.sign_seed
    )
    log.append(team.id, "member_add", membership)
    fingerprint = certs.org_fingerprint(world.org_root)
    async with fake_server(log) as fake:
        async with client(fake, tmp_path / "a") as c:
            with pytest.raises(FingerprintMismatch):
                await c.keys.org(world.org, fingerprint="0000-0000-0000-0000-0000-0000-0000-0000")
            assert world.org not in c.session.state.org_roots
            org = await c.keys.org(world.org, fingerprint=fingerprint.lower())
            assert org.org_root == world.org_root
            cw = await c.keys.subject(world.caseworker.id)
            assert cw.org is not None and cw.state.org == world.org
            verified = await c.keys.subject(team.id)
            assert verified.state.kind == "team"
            assert verified.state.members == {world.caseworker.id}
            assert verified.state.current_encryption(NOW + YEAR - 1)["kid"] == team.enc["kid"]
        # a client that pinned another root for this org refuses the chain
        async with client(fake, tmp_path / "b") as c:
            other = certs.make_org_root(
                org=world.org, name="Fake", root_seed=seed("fake-root"), created=NOW
            )
            c.keys.pin_org_root(other)
            with pytest.raises(VerificationFailed) as caught:
                await c.keys.subject(world.caseworker.id)
            assert caught.value.code == "IdentityChanged"


async def test_an_unknown_subject_is_not_found(tmp_path: Path) -> None:
    from postbox.client.errors import NotFoundError

    async with fake_server(FakeLog()) as fake, client(fake, tmp_path) as c:
        with pytest.raises(NotFoundError) as caught:
            await c.keys.subject("AAAAAAAAAAAAAAAAAAAAAA")
        assert caught.value.status == 404 and caught.value.code == "not-found"


async def test_the_org_roots_endorsement_must_name_the_pinned_server_keys(
    world: World, tmp_path: Path
) -> None:
    log = FakeLog()
    add_org(log, world)
    other = sign_keypair(seed("other-log"))[0]
    key = certs.make_server_key(log_pk=other, receipt_pk=other, created=NOW)
    log.append(
        world.org,
        "server_key",
        certs.endorse_server_key(key, org=world.org, root_seed=world.root_seed),
    )
    async with fake_server(log) as fake, client(fake, tmp_path) as c:
        with pytest.raises(PinMismatch, match="endorsed"):
            await c.keys.subject(world.caseworker.id)
    honest = FakeLog()
    add_org(honest, world)
    key = certs.make_server_key(
        log_pk=honest.log_pk, receipt_pk=sign_keypair(honest.receipt_seed)[0], created=NOW
    )
    honest.append(
        world.org,
        "server_key",
        certs.endorse_server_key(key, org=world.org, root_seed=world.root_seed),
    )
    async with fake_server(honest) as fake, client(fake, tmp_path / "b") as c:
        assert await c.keys.check_endorsement(world.org)
        await c.keys.subject(world.caseworker.id)
