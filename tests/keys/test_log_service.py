"""The key-transparency log service on SQLite and PostgreSQL: genesis, appends that the
client code accepts, refused events, pending staff identities, concurrency, tree heads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from support.keys import (
    DAY,
    NOW,
    YEAR,
    Account,
    FakeClock,
    Org,
    account,
    check_stored_log,
    ident,
    org,
)

from postbox.crypto import certs
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import CertificateRevoked
from postbox.crypto.keystate import SubjectState, replay
from postbox.crypto.logevents import EventType, parse_leaf, verify_keys_response
from postbox.keys import merkle, store
from postbox.keys.commands import PublishKey
from postbox.keys.log import Appended, KeyLog, LogMismatch, server_subject
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import ACCOUNTS, AUDIT, CLOCK, DB, KEYLOG, SECRETS, SETTINGS
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.db.schema import certificates
from postbox.mailbox.errors import PostboxError
from postbox.mailbox.secrets import Secrets, load_secrets
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]


# --- helpers -------------------------------------------------------------------------------------
async def append(
    app: web.Application, subject: str, type: EventType, body: Any, **kw: Any
) -> Appended:
    async with app[DB].write() as conn:
        return await app[KEYLOG].append(
            conn, subject=subject, type=type, body=body, now=app[CLOCK](), **kw
        )


async def counts(app: web.Application) -> tuple[int, int, int]:
    """(log size, certificate rows, tree heads)."""
    async with app[DB].read() as conn:
        size = await store.log_size(conn)
        certs_n = (await conn.execute(select(func.count()).select_from(certificates))).scalar()
        heads = await store.head_count(conn)
    return size, int(certs_n or 0), heads


async def refused(
    app: web.Application, code: str, action: Callable[[], Awaitable[Any]], status: int = 400
) -> PostboxError:
    """``action`` fails with this problem code and stores nothing."""
    before = await counts(app)
    with pytest.raises(PostboxError) as info:
        await action()
    assert (info.value.code, info.value.status) == (code, status), info.value.detail
    assert await counts(app) == before
    return info.value


async def keys_of(client: Client, subject: str) -> tuple[Any, ...]:
    """GET /api/v1/keys/{subject}, verified exactly as a client does; the events."""
    resp = await client.get(f"/api/v1/keys/{subject}")
    assert resp.status == 200, await resp.text()
    app = client.app
    chain = verify_keys_response(await resp.read(), subject, app[SECRETS].log_pk, now=app[CLOCK]())
    return chain.events


async def state_of(
    client: Client, subject: str, orgs: dict[str, Org] | None = None
) -> SubjectState:
    """The subject's key state replayed by the client code, with these orgs pinned."""
    roots = {o.id: certs.verify_org_root(o.root) for o in (orgs or {}).values()}
    org_states = {
        o.id: replay(list(await keys_of(client, o.id)), org_roots=roots)
        for o in (orgs or {}).values()
    }
    return replay(list(await keys_of(client, subject)), org_roots=roots, orgs=org_states)


async def setup_org(app: web.Application, o: Org) -> None:
    """The org root, its admin's identity and the admin key in the org chain."""
    await append(app, o.id, "org_root", o.root)
    await append(app, o.admin.id, "identity", o.admin.identity)
    await append(app, o.id, "admin_key", o.admin.identity)


# --- genesis -------------------------------------------------------------------------------------
async def test_genesis_is_leaf_zero_the_servers_key(kclient: Client, settings: Settings) -> None:
    app = kclient.app
    keylog = app[KEYLOG]
    async with app[DB].read() as conn:
        assert await store.log_size(conn) == 1
        event = parse_leaf(await store.leaf_at(conn, 0) or b"")
        head = await store.newest_head(conn)
    assert event["subject"] == server_subject(app[SECRETS].log_pk) == keylog.server_subject
    assert (event["seq"], event["prev"], event["type"]) == (0, None, "server_key")
    assert event["body"]["org"] is None and event["body"]["sig"] is None
    assert b64d(event["body"]["server_key"]["log_pk"]) == app[SECRETS].log_pk
    assert b64d(event["body"]["server_key"]["receipt_pk"]) == app[SECRETS].receipt_pk
    assert head is not None and head.size == 1
    state = replay(list(await keys_of(kclient, keylog.server_subject)))
    assert state.kind == "server"
    # a second server on the same database and secrets finds the log and adds nothing
    async with TestServer(create_app(settings)):
        pass
    assert (await counts(app))[0] == 1
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_genesis_runs_once_when_processes_start_together(settings: Settings) -> None:
    secrets = load_secrets(settings.secrets_dir)
    dbs = [Database(settings.database_url) for _ in range(3)]
    try:
        await upgrade(dbs[0])
        logs = [
            KeyLog(db=db, secrets=secrets, settings=settings, clock=FakeClock(),
                   accounts=AccountService(secrets), audit=Audit())
            for db in dbs
        ]  # fmt: skip
        await asyncio.gather(*(k.genesis() for k in logs))
        async with dbs[0].read() as conn:
            assert await store.log_size(conn) == 1
            assert await store.head_count(conn) == 1
        await check_stored_log(dbs[0], secrets.log_pk)
    finally:
        for db in dbs:
            await db.dispose()


async def test_a_log_started_with_other_keys_is_refused(kclient: Client) -> None:
    app = kclient.app
    other = Secrets(*(bytes([i]) * 32 for i in range(6)))
    keylog = KeyLog(db=app[DB], secrets=other, settings=app[SETTINGS], clock=app[CLOCK],
                    accounts=app[ACCOUNTS], audit=app[AUDIT])  # fmt: skip
    with pytest.raises(LogMismatch):
        await keylog.genesis()


# --- chains the client code accepts --------------------------------------------------------------
async def test_a_citizen_chain_verifies_with_the_client_code(kclient: Client) -> None:
    app = kclient.app
    alice = account("alice")
    first = await append(app, alice.id, "identity", alice.identity)
    assert (first.index, first.seq) == (1, 0)
    key1 = alice.encryption()
    key2 = alice.encryption(NOW + 1)
    await append(app, alice.id, "key", key1)
    await append(app, alice.id, "key", key2)
    old_identity = alice.identity
    await append(app, alice.id, "identity", alice.rotate(NOW + 2))
    key3 = alice.encryption(NOW + 3)
    await append(app, alice.id, "key", key3)
    done = await append(app, alice.id, "revoke", alice.revoke(key1["cert"]["kid"]))
    assert (done.index, done.seq) == (6, 5)

    events = await keys_of(kclient, alice.id)
    assert [e["type"] for e in events] == [
        "identity", "key", "key", "identity", "key", "revoke",
    ]  # fmt: skip
    state = replay(list(events))
    assert state.current_identity() == alice.identity["cert"]
    assert state.current_encryption(app[CLOCK]()) == key3["cert"]

    directory = app[KEYLOG].directory
    async with app[DB].read() as conn:
        ident_now = await directory.current_identity(conn, alice.id)
        enc_now = await directory.current_encryption(conn, alice.id, now=app[CLOCK]())
        first_key = await directory.get(conn, key1["cert"]["kid"])
        old = await directory.get(conn, old_identity["cert"]["kid"])
        history = await directory.certificates(conn, alice.id)
    assert ident_now is not None and ident_now.served == alice.identity
    assert enc_now is not None and enc_now.served == key3
    assert first_key is not None and first_key.revoked is not None
    assert first_key.superseded is not None
    assert old is not None and old.superseded is not None
    assert [r.kid for r in history] == [
        old_identity["cert"]["kid"], key1["cert"]["kid"], key2["cert"]["kid"],
        alice.kid, key3["cert"]["kid"],
    ]  # fmt: skip
    # revoking the newest key leaves the account without one, in the log and the directory
    await append(app, alice.id, "revoke", alice.revoke(key3["cert"]["kid"]))
    with pytest.raises(CertificateRevoked):
        replay(list(await keys_of(kclient, alice.id))).current_encryption(app[CLOCK]())
    async with app[DB].read() as conn:
        assert await directory.current_encryption(conn, alice.id, now=app[CLOCK]()) is None
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_org_staff_and_team_chains_verify_with_the_client_code(kclient: Client) -> None:
    app = kclient.app
    o = org("nbg")
    await setup_org(app, o)
    cw = account("nbg/cw", "caseworker", org=o)
    await append(app, cw.id, "identity", cw.identity)
    cw_key = cw.encryption()
    await append(app, cw.id, "key", cw_key)
    team = ident("nbg/team")
    t = app[CLOCK]()
    await append(app, team, "key", o.team_key(team))
    await append(app, team, "member_add", o.membership(team, cw.id, t))
    server = parse_leaf(await _leaf0(app))["body"]["server_key"]
    await append(app, o.id, "server_key", o.endorse(server))
    await append(app, team, "member_remove", o.membership(team, cw.id, t + 1))
    orgs = {o.id: o}
    team_state = await state_of(kclient, team, orgs)
    assert team_state.kind == "team" and team_state.rotation_pending
    assert team_state.members == frozenset()
    await append(app, team, "key", o.team_key(team, 1))
    assert not (await state_of(kclient, team, orgs)).rotation_pending
    # the service replays the same state from the log for other features
    async with app[DB].read() as conn:
        served = await app[KEYLOG].subject_state(conn, team)
        assert await app[KEYLOG].subject_state(conn, ident("nobody")) is None
        assert [e["type"] for e in await app[KEYLOG].events(conn, team)] == [
            "key", "member_add", "member_remove", "key",
        ]  # fmt: skip
    assert served is not None and served.kind == "team" and not served.rotation_pending
    org_state = await state_of(kclient, o.id, orgs)
    assert org_state.kind == "org" and org_state.server_key == server
    assert org_state.admin_valid_at(o.admin.kid, t)["subject"] == o.admin.id
    # an admin of the org revokes the caseworker's key (a staff member leaving)
    rev = cw.revoke(cw_key["cert"]["kid"], reason="left", by=o.admin.sign_seed)
    await append(app, cw.id, "revoke", rev)
    cw_state = await state_of(kclient, cw.id, orgs)
    with pytest.raises(CertificateRevoked):
        cw_state.current_encryption(app[CLOCK]())
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def _leaf0(app: web.Application) -> bytes:
    async with app[DB].read() as conn:
        leaf = await store.leaf_at(conn, 0)
    assert leaf is not None
    return leaf


# --- refused events ------------------------------------------------------------------------------
def _flip(signed: Any, member: str = "sig") -> Any:
    raw = bytearray(b64d(signed[member]))
    raw[0] ^= 1
    return {**signed, member: b64e(bytes(raw))}


async def test_events_that_do_not_verify_are_refused_and_nothing_is_stored(
    kclient: Client,
) -> None:
    app = kclient.app
    alice, bob, mallory = account("alice"), account("bob"), account("mallory")
    tip = await append(app, alice.id, "identity", alice.identity)
    await append(app, bob.id, "identity", bob.identity)
    bob_key = bob.encryption()
    await append(app, bob.id, "key", bob_key)

    def to_alice(type: EventType, body: Any, **kw: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: append(app, alice.id, type, body, **kw)

    # a bad signature on the certificate
    await refused(app, "bad-signature", to_alice("key", _flip(alice.encryption())))
    # a key of alice signed by bob's identity
    by_bob = certs.sign_cert(alice.encryption()["cert"], bob.sign_seed)
    await refused(app, "invalid-certificate", to_alice("key", by_bob))
    # bob's certificates put in alice's chain (certificates for someone else's account)
    await refused(app, "invalid-certificate", to_alice("key", bob.encryption()))
    await refused(app, "invalid-certificate", to_alice("identity", bob.identity))
    # identity changes without a valid rotation link
    unlinked = replace(alice).rotate(NOW + 5, linked=False)
    await refused(app, "identity-not-linked", to_alice("identity", unlinked))
    forged = certs.link_rotation(unlinked, mallory.sign_seed)
    await refused(app, "identity-not-linked", to_alice("identity", forged))
    # the writer expected another chain head (wrong seq, wrong prev)
    good = alice.encryption()
    await refused(app, "wrong-seq", to_alice("key", good, expect_seq=5), 409)
    await refused(
        app, "wrong-prev", to_alice("key", good, expect_seq=1, expect_prev=bytes(32)), 409
    )
    # a revocation signed by someone else (for a citizen, only an admin of its org could)
    rev = certs.make_revocation(
        subject=alice.id, kid=alice.kid, at=NOW + DAY, reason="compromised",
        signer_seed=bob.sign_seed,
    )  # fmt: skip
    await refused(app, "org-certification-missing", to_alice("revoke", rev))
    # a key another subject already certified (same public key, so the same kid)
    stolen = certs.sign_cert({**bob_key["cert"], "subject": alice.id}, alice.sign_seed)
    await refused(app, "kid-in-use", to_alice("key", stolen), 409)
    # a key event for a subject without an identity
    carol = account("carol")
    await refused(
        app, "broken-chain", lambda: append(app, carol.id, "key", carol.encryption()), 409
    )
    # dates: a certificate from the future, an expired one
    await refused(
        app, "certificate-from-future", to_alice("key", alice.encryption(app[CLOCK]() + DAY))
    )
    expired = alice.encryption(NOW - YEAR, expires=NOW - 1)
    await refused(app, "certificate-expired", to_alice("key", expired))
    # malformed bodies
    await refused(app, "invalid-event", to_alice("key", {**good, "extra": 1}))
    await refused(app, "invalid-event", to_alice("revoke", good))
    await refused(app, "invalid-event", to_alice("nonsense", good))  # type: ignore[arg-type]
    # the right event still goes in, at the expected head
    done = await append(app, alice.id, "key", good, expect_seq=1, expect_prev=tip.leaf_hash)
    assert done.seq == 1
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_staff_and_team_events_that_do_not_verify_are_refused(kclient: Client) -> None:
    app = kclient.app
    o, other = org("nbg"), org("fth")
    # staff identities need the org root, in the log, and its signature
    early = account("nbg/early", "caseworker", org=o)
    await refused(
        app, "org-certification-missing", lambda: append(app, early.id, "identity", early.identity)
    )
    await setup_org(app, o)
    # a second root for the org, another org's root for a new org
    await refused(app, "invalid-certificate", lambda: append(app, o.id, "org_root", other.root))
    await refused(
        app, "invalid-certificate", lambda: append(app, ident("new-org"), "org_root", other.root)
    )
    uncertified = account("nbg/cw2", "caseworker", org=o, certified=False)
    await refused(
        app,
        "org-certification-missing",
        lambda: append(app, uncertified.id, "identity", uncertified.identity),
    )
    by_other_root = certs.org_certify(uncertified.identity, other.root_seed)
    await refused(
        app, "bad-signature", lambda: append(app, uncertified.id, "identity", by_other_root)
    )
    # an org root whose self-signature is broken, for another org
    await refused(
        app, "bad-signature", lambda: append(app, other.id, "org_root", _flip(other.root))
    )
    cw = account("nbg/cw", "caseworker", org=o)
    await append(app, cw.id, "identity", cw.identity)
    team = ident("nbg/team")
    # team keys and memberships need an admin key of the team's org
    by_cw = certs.sign_cert(o.team_key(team)["cert"], cw.sign_seed)
    await refused(app, "invalid-certificate", lambda: append(app, team, "key", by_cw))
    await append(app, team, "key", o.team_key(team))
    t = app[CLOCK]()
    not_admin = certs.sign_membership(team=team, member=cw.id, at=t, admin_seed=cw.sign_seed)
    await refused(app, "invalid-certificate", lambda: append(app, team, "member_add", not_admin))
    await refused(
        app,
        "invalid-certificate",
        lambda: append(app, team, "member_remove", o.membership(team, cw.id, t)),
    )
    await append(app, team, "member_add", o.membership(team, cw.id, t))
    # replaying an older statement (same `at`) is refused
    await refused(
        app,
        "invalid-certificate",
        lambda: append(app, team, "member_remove", o.membership(team, cw.id, t)),
    )
    # admin_key events carry org-certified admin identities of this org
    await refused(app, "invalid-certificate", lambda: append(app, o.id, "admin_key", cw.identity))
    # the server chain takes only unendorsed server keys
    server = parse_leaf(await _leaf0(app))["body"]["server_key"]
    await refused(
        app,
        "invalid-certificate",
        lambda: append(app, app[KEYLOG].server_subject, "server_key", o.endorse(server)),
    )
    await check_stored_log(app[DB], app[SECRETS].log_pk)


# --- pending staff identities --------------------------------------------------------------------
async def test_staff_identities_wait_for_org_certification(kclient: Client) -> None:
    app, keylog = kclient.app, kclient.app[KEYLOG]
    o, other = org("nbg"), org("fth")
    await setup_org(app, o)
    cw = account("nbg/cw", "caseworker", org=o, certified=False)
    enc = cw.encryption()
    now = app[CLOCK]()
    async with app[DB].write() as conn:
        await keylog.register_pending(conn, signed_cert=cw.identity, now=now)
        await keylog.register_pending(conn, signed_cert=enc, now=now)
        await keylog.register_pending(conn, signed_cert=enc, now=now)  # idempotent
    async with app[DB].read() as conn:
        assert await keylog.pending(conn, o.id) == [cw.identity]
        assert await keylog.pending(conn, other.id) == []
        assert await keylog.directory.current_identity(conn, cw.id) is None
    assert (await kclient.get(f"/api/v1/keys/{cw.id}")).status == 404

    async def register(body: Any) -> None:
        async with app[DB].write() as conn:
            await keylog.register_pending(conn, signed_cert=body, now=now)

    async def certify(body: Any, org_id: str = o.id) -> list[Appended]:
        async with app[DB].write() as conn:
            return await keylog.certify(conn, org_id=org_id, signed_identity=body, now=now)

    citizen = account("citizen")
    await refused(app, "not-staff", lambda: register(citizen.identity))
    await refused(app, "identity-not-pending", lambda: register(citizen.encryption()), 409)
    await refused(app, "already-certified", lambda: register(account("x", "admin", org=o).identity))
    second = account("nbg/cw", "caseworker", org=o, certified=False)
    second.rotate(NOW, linked=False)
    second.identity = {**second.identity, "org_sig": None}
    await refused(app, "already-pending", lambda: register(second.identity), 409)
    await refused(
        app,
        "bad-signature",
        lambda: register(_flip(account("y", "caseworker", org=o, certified=False).identity)),
    )
    await refused(app, "invalid-certificate", lambda: register({"cert": 1}))

    certified = certs.org_certify(cw.identity, o.root_seed)
    await refused(app, "not-pending", lambda: certify(certified, other.id), 404)
    await refused(app, "org-certification-missing", lambda: certify(cw.identity))
    await refused(
        app,
        "bad-signature",
        lambda: certify(certs.org_certify(cw.identity, other.root_seed)),
    )
    changed = certs.org_certify(
        certs.sign_cert({**cw.identity["cert"], "created": NOW + 1}, cw.sign_seed), o.root_seed
    )
    await refused(app, "certificate-mismatch", lambda: certify(changed))
    tampered = {**certified, "sig": _flip(certified)["sig"]}
    await refused(app, "certificate-mismatch", lambda: certify(tampered))

    done = await certify(certified)
    assert [d.seq for d in done] == [0, 1]
    async with app[DB].read() as conn:
        assert await keylog.pending(conn, o.id) == []
        current = await keylog.directory.current_identity(conn, cw.id)
        key = await keylog.directory.current_encryption(conn, cw.id, now=now)
    assert current is not None and current.served == certified
    assert key is not None and key.served == enc
    state = await state_of(kclient, cw.id, {o.id: o})
    assert state.current_identity() == cw.identity["cert"]
    assert state.current_encryption(now) == enc["cert"]
    await refused(app, "not-pending", lambda: certify(certified), 404)
    await check_stored_log(app[DB], app[SECRETS].log_pk)


# --- what a principal may publish (POST /api/v1/keys) --------------------------------------------
async def test_accounts_publish_only_to_their_own_chain(kclient: Client) -> None:
    app, keylog = kclient.app, kclient.app[KEYLOG]
    alice, bob = account("alice"), account("bob")
    tip = await append(app, alice.id, "identity", alice.identity)
    await append(app, bob.id, "identity", bob.identity)
    me = alice.principal()

    def cmd(type: EventType, body: Any, **kw: Any) -> PublishKey:
        return PublishKey(type=type, body=body, **kw)

    first = await keylog.publish(me, cmd("key", alice.encryption(), seq=1, prev=tip.leaf_hash))
    assert first.seq == 1
    await keylog.publish(me, cmd("identity", alice.rotate(NOW + 1)))
    await keylog.publish(me, cmd("revoke", alice.revoke(alice.keys[0]["cert"]["kid"])))

    async def publish(c: PublishKey, who: Account = alice) -> Any:
        return await keylog.publish(who.principal(), c)

    await refused(app, "not-your-subject", lambda: publish(cmd("key", bob.encryption())), 403)
    await refused(app, "not-your-subject", lambda: publish(cmd("revoke", bob.revoke(bob.kid))), 403)
    # naming one's own chain for someone else's certificate does not help
    await refused(
        app,
        "invalid-certificate",
        lambda: publish(cmd("key", bob.encryption(), subject=alice.id)),
    )
    await refused(
        app,
        "type-not-allowed",
        lambda: publish(cmd("admin_key", alice.identity, subject=alice.id)),
        403,
    )
    o = org("nbg")
    await refused(app, "type-not-allowed", lambda: publish(cmd("org_root", o.root)), 403)
    team = ident("team")
    await refused(app, "type-not-allowed", lambda: publish(cmd("key", o.team_key(team))), 403)
    await refused(
        app,
        "type-not-allowed",
        lambda: publish(cmd("member_add", o.membership(team, alice.id, 1))),
        403,
    )
    await refused(
        app,
        "wrong-seq",
        lambda: publish(cmd("key", alice.encryption(), seq=1, prev=tip.leaf_hash)),
        409,
    )
    await refused(app, "invalid-event", lambda: publish(cmd("key", {"cert": {}})))
    # no chain yet: the first identity comes with activation or org certification
    carol = account("carol")
    await refused(app, "no-chain", lambda: publish(cmd("identity", carol.identity), carol), 409)
    await refused(app, "no-chain", lambda: publish(cmd("key", carol.encryption()), carol), 409)
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_org_admins_publish_to_their_org_and_revoke_their_staff(kclient: Client) -> None:
    app, keylog = kclient.app, kclient.app[KEYLOG]
    o, other = org("nbg"), org("fth")
    await setup_org(app, o)
    await setup_org(app, other)
    cw = account("nbg/cw", "caseworker", org=o)
    await append(app, cw.id, "identity", cw.identity)
    key = cw.encryption()
    await append(app, cw.id, "key", key)
    citizen = account("citizen")
    await append(app, citizen.id, "identity", citizen.identity)
    admin = o.admin.principal()

    async def publish(c: PublishKey, who: Any = admin) -> Any:
        return await keylog.publish(who, c)

    # a second admin (identity first in its own chain, then the admin key in the org chain)
    admin2 = account("nbg/admin2", "admin", org=o)
    await append(app, admin2.id, "identity", admin2.identity)
    await publish(PublishKey(type="admin_key", body=admin2.identity))
    server = parse_leaf(await _leaf0(app))["body"]["server_key"]
    await publish(PublishKey(type="server_key", body=o.endorse(server)))
    # revoking a staff member's key, in the staff member's chain
    rev = cw.revoke(key["cert"]["kid"], reason="left", by=o.admin.sign_seed)
    await publish(PublishKey(type="revoke", body=rev))
    # revoking an admin key in the org chain (subject named explicitly)
    rev2 = certs.make_revocation(subject=admin2.id, kid=admin2.kid, at=app[CLOCK](),
                                 reason="left", signer_seed=o.admin.sign_seed)  # fmt: skip
    await publish(PublishKey(type="revoke", body=rev2, subject=o.id))
    assert (await state_of(kclient, o.id, {o.id: o})).revocations[-1] == rev2["revoke"]

    # not a citizen's chain, not another org's chain or staff
    crev = certs.make_revocation(subject=citizen.id, kid=citizen.kid, at=app[CLOCK](),
                                 reason="compromised", signer_seed=o.admin.sign_seed)  # fmt: skip
    await refused(
        app, "not-your-subject", lambda: publish(PublishKey(type="revoke", body=crev)), 403
    )
    oadmin2 = account("fth/admin2", "admin", org=other)
    await refused(
        app,
        "not-your-subject",
        lambda: publish(PublishKey(type="admin_key", body=oadmin2.identity)),
        403,
    )
    await refused(
        app,
        "not-your-subject",
        lambda: publish(PublishKey(type="revoke", body=rev), other.admin.principal()),
        403,
    )
    # a caseworker cannot do what the admin does
    await refused(
        app,
        "not-your-subject",
        lambda: publish(PublishKey(type="server_key", body=o.endorse(server)), cw.principal()),
        403,
    )
    await refused(
        app,
        "type-not-allowed",
        lambda: publish(PublishKey(type="identity", body=cw.identity, subject=o.id)),
        403,
    )
    await check_stored_log(app[DB], app[SECRETS].log_pk)


# --- concurrency ---------------------------------------------------------------------------------
async def test_concurrent_appends_on_one_app_keep_the_log_consistent(kclient: Client) -> None:
    app = kclient.app
    people = [account(f"p{i}") for i in range(24)]
    await asyncio.gather(*(append(app, p.id, "identity", p.identity) for p in people))
    # many appends to different chains and to one chain at once
    busy = people[0]
    keys = [busy.encryption(NOW + i) for i in range(12)]
    results = await asyncio.gather(
        *(append(app, busy.id, "key", k) for k in keys),
        *(append(app, p.id, "key", p.encryption()) for p in people[1:]),
    )
    await asyncio.gather(*(app[KEYLOG].heads.ensure_head(force=True) for _ in range(4)))
    assert sorted(r.seq for r in results[: len(keys)]) == list(range(1, 13))
    tree = await check_stored_log(app[DB], app[SECRETS].log_pk)
    assert tree.size == 1 + 2 * len(people) - 1 + len(keys)
    assert len(await keys_of(kclient, busy.id)) == 1 + len(keys)


async def test_two_servers_on_one_database_append_safely(
    kclient: Client, settings: Settings, clock: FakeClock
) -> None:
    first = kclient.app
    second = create_app(settings, clock=clock)
    async with TestServer(second):
        assert second[KEYLOG].server_subject == first[KEYLOG].server_subject
        people = [account(f"q{i}") for i in range(16)]
        apps = [first, second]
        await asyncio.gather(
            *(append(apps[i % 2], p.id, "identity", p.identity) for i, p in enumerate(people))
        )
        busy = people[0]
        keys = [busy.encryption(NOW + i) for i in range(10)]
        await asyncio.gather(
            *(append(apps[i % 2], busy.id, "key", k) for i, k in enumerate(keys)),
            *(append(apps[i % 2], p.id, "key", p.encryption()) for i, p in enumerate(people[1:])),
            *(a[KEYLOG].heads.ensure_head(force=True) for a in apps for _ in range(3)),
        )
        tree = await check_stored_log(second[DB], second[SECRETS].log_pk)
        assert tree.size == 1 + 2 * len(people) - 1 + len(keys)
        events = await keys_of(kclient, busy.id)
        assert [e["seq"] for e in events] == list(range(11))
        newest = replay(list(events)).current_encryption(clock())
        assert newest == events[-1]["body"]["cert"]


# --- tree heads ----------------------------------------------------------------------------------
async def test_tree_heads_are_signed_when_the_log_grew_or_the_head_is_old(
    kclient: Client, clock: FakeClock
) -> None:
    app, keylog = kclient.app, kclient.app[KEYLOG]
    first = await keylog.heads.ensure_head()
    assert await keylog.heads.ensure_head() == first  # nothing changed: no new head
    alice = account("alice")
    await append(app, alice.id, "identity", alice.identity)
    grown = await keylog.heads.ensure_head()
    assert (grown.size, grown.ts) == (first.size + 1, clock())
    clock.advance(app[SETTINGS].tree_head_seconds * 1000 - 1)
    assert await keylog.heads.ensure_head() == grown
    clock.advance(1)
    fresh = await keylog.heads.ensure_head()
    assert (fresh.size, fresh.root, fresh.ts) == (grown.size, grown.root, clock())
    # a clock that went back never makes a head older than the newest
    clock.advance(-DAY)
    await append(app, alice.id, "key", alice.encryption())
    later = await keylog.heads.ensure_head()
    assert later.size == fresh.size + 1 and later.ts == fresh.ts
    # every pair of heads is consistent
    async with app[DB].read() as conn:
        heads = await store.all_heads(conn)
    assert len(heads) == 4
    for a in heads:
        for b in heads:
            if a.size <= b.size:
                proof = await keylog.heads.consistency(a.size, b.size)
                merkle.verify_consistency(
                    a.size, b.size, [b64d(p) for p in proof["path"]], a.root, b.root
                )
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_the_background_task_signs_new_heads(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    quick = replace(settings, tree_head_seconds=1)
    client = await aiohttp_client(create_app(quick, clock=clock))
    app = client.app
    alice = account("alice")
    await append(app, alice.id, "identity", alice.identity)
    for _ in range(200):  # the task polls every second; wait for it, never for a fixed time
        async with app[DB].read() as conn:
            head = await store.newest_head(conn)
        if head is not None and head.size == 2:
            break
        await asyncio.sleep(0.05)
    assert head is not None and head.size == 2
