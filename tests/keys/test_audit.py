"""``postbox keys audit URL`` against a live server on loopback, on SQLite and PostgreSQL.

The log is filled through the real routes (an organisation, staff, a citizen, a team with
members, a new key, an endorsement, a revocation) and, for length, through the log service.
Then the auditor replays it over HTTP alone — and must fail loudly (exit 3, a finding
naming the problem) when the server serves a swapped key, a tampered leaf, a head signed by
another key, or a history that forks from the head it stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update
from support.client import Tampering
from support.db import postgres_database
from support.keys import DAY, FakeClock, account
from support.onboard import (
    OrgSetup,
    Person,
    add_citizen,
    add_staff,
    create_team,
    init_team,
    membership,
    send,
    setup_org,
    wrap,
)

from postbox import cli
from postbox.crypto import certs
from postbox.crypto.certs import SignedCert
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.logevents import LogEvent, event_leaf, next_event, parse_leaf
from postbox.crypto.primitives import box_keypair, random_bytes, sign_keypair
from postbox.crypto.transparency import make_tree_head, sign_tree_head
from postbox.keys import merkle, store
from postbox.keys.audit import EXIT_ERROR, EXIT_FAILED, EXIT_OK, AuditReport, amain, audit
from postbox.keys.merkle import MemoryTree
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import CLOCK, DB, KEYLOG, SECRETS
from postbox.mailbox.clock import system_clock
from postbox.mailbox.db.schema import log_leaves
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]


@dataclass
class Live:
    client: Client
    tampering: Tampering

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def url(self) -> str:
        return f"http://{self.client.host}:{self.client.port}"


@dataclass
class Scene:
    setup: OrgSetup
    staff: list[Person]
    citizen: Person
    team: str


def _app(settings: Settings, clock: Callable[[], int], tampering: Tampering) -> web.Application:
    app = create_app(settings, clock=clock)
    # innermost: it rewrites what the route handlers answered, like a compromised server
    app.middlewares.append(tampering.middleware())
    return app


@pytest.fixture
async def live(aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock) -> Live:
    tampering = Tampering()
    return Live(await aiohttp_client(_app(settings, clock, tampering)), tampering)


@asynccontextmanager
async def serving(app: web.Application, port: int, tampering: Tampering) -> AsyncIterator[Live]:
    """A server on a fixed loopback port (the auditor's state file is per origin)."""
    client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
    await client.start_server()
    try:
        yield Live(client, tampering)
    finally:
        await client.close()


# --- filling the log ----------------------------------------------------------------------------
async def populate(live: Live, now: int) -> Scene:
    """An org (root, admin), two caseworkers, a citizen, a team with both caseworkers, a
    second key of the citizen, the org root's endorsement of the server, a revocation."""
    client = live.client
    setup = await setup_org(client, now)
    staff = [await add_staff(client, setup, "caseworker", now) for _ in range(2)]
    citizen = await add_citizen(client, staff[0], now)
    team = await create_team(client, setup)
    key = await init_team(client, setup, team, staff[0], now)
    status, body = await send(
        client,
        "POST",
        f"/api/v1/teams/{team}/members",
        {
            "member": staff[1].id,
            "membership": membership(team, staff[1], setup.admin, now + 1),
            "wrap": wrap(key, staff[1], staff[0]),
        },
        who=staff[0],
    )
    assert status == 201, body
    await publish(live, citizen, "key", new_key(citizen, now))
    server_key = certs.make_server_key(
        log_pk=live.app[SECRETS].log_pk, receipt_pk=live.app[SECRETS].receipt_pk, created=now
    )
    endorsement = certs.endorse_server_key(server_key, org=setup.org, root_seed=setup.root_seed)
    await publish(live, setup.admin, "server_key", endorsement)
    revocation = certs.make_revocation(
        subject=staff[1].id,
        kid=staff[1].enc_cert["kid"],
        at=now,
        reason="compromised",
        signer_seed=staff[1].sign_seed,
    )
    await publish(live, staff[1], "revoke", revocation)
    return Scene(setup, staff, citizen, team)


def new_key(p: Person, now: int) -> SignedCert:
    cert = certs.make_cert(
        subject=p.id,
        kind=p.kind,
        org=None if p.kind == "citizen" else p.org,
        use="encrypt",
        pk=box_keypair(random_bytes(32))[0],
        created=now,
        expires=now + 300 * DAY,
    )
    return certs.sign_cert(cert, p.sign_seed)


async def publish(live: Live, who: Person, type_: str, body: Any) -> None:
    status, answer = await send(
        live.client, "POST", "/api/v1/keys", {"type": type_, "body": body}, who=who
    )
    assert status == 201, answer


async def grow(app: web.Application, accounts: int, keys_each: int, label: str) -> None:
    """Real events through the log service: each account's identity and ``keys_each``
    encryption keys, one transaction per account."""
    for a in range(accounts):
        who = account(f"{label}-{a}")
        async with app[DB].write() as conn:
            log = app[KEYLOG]
            now = app[CLOCK]()
            await log.append(conn, subject=who.id, type="identity", body=who.identity, now=now)
            for _ in range(keys_each):
                await log.append(conn, subject=who.id, type="key", body=who.encryption(), now=now)


async def bulk(app: web.Application, accounts: int, keys_each: int, label: str) -> None:
    """Real signed events loaded straight into the log tables in one transaction (as the
    benchmarks do): leaves, Merkle nodes, size; then a signed head."""
    now = app[CLOCK]()
    async with app[DB].write() as conn:
        size = await store.lock_log(conn)
        frontier = merkle.Frontier.load(size, await store.nodes(conn, merkle.root_nodes(size)))
        for a in range(accounts):
            who = account(f"{label}-{a}")
            previous: LogEvent | None = None
            for k in range(keys_each + 1):
                body = who.encryption() if k else who.identity
                event = next_event(
                    previous, subject=who.id, type="key" if k else "identity", ts=now, body=body
                )
                leaf = event_leaf(event)
                h = merkle.leaf_hash(leaf)
                await store.insert_leaf(
                    conn, idx=size, subject=who.id, seq=k, type=event["type"], leaf=leaf,
                    leaf_hash=h, ts=now,
                )  # fmt: skip
                frontier, created = frontier.append(h)
                await store.insert_nodes(conn, created)
                size += 1
                previous = event
        await store.set_log_size(conn, size)
    await app[KEYLOG].heads.ensure_head(force=True)


async def leaves_of(app: web.Application) -> list[bytes]:
    async with app[DB].read() as conn:
        size = await store.log_size(conn)
        return await store.leaves_between(conn, 0, size)


async def chain_of(app: web.Application, subject: str) -> list[tuple[int, LogEvent]]:
    async with app[DB].read() as conn:
        rows = await store.subject_leaves(conn, subject)
    return [(r.idx, parse_leaf(r.leaf)) for r in rows]


def codes(report: AuditReport) -> set[tuple[str, str]]:
    return {(f.check, f.code) for f in report.findings}


def assert_failed(report: AuditReport, check: str, code: str) -> None:
    assert report.exit_code == EXIT_FAILED, report.lines()
    assert not report.ok and not report.state_saved
    assert (check, code) in codes(report), report.lines()


# --- it passes on an honest server --------------------------------------------------------------
async def test_audit_passes_then_checks_consistency_with_the_stored_head(
    live: Live, clock: FakeClock, tmp_path: Path
) -> None:
    scene = await populate(live, clock())
    state = tmp_path / "audit.json"
    first = await audit(live.url, state_path=state, clock=clock)
    assert first.ok and first.exit_code == EXIT_OK, first.to_json()
    assert first.findings_total == 0 and first.root_matches is True
    assert first.pinned_by == "first use" and first.log_key == b64e(live.app[SECRETS].log_pk)
    assert first.consistency == "first audit" and first.state_saved
    size = len(await leaves_of(live.app))
    assert first.head is not None and first.head["size"] == first.leaves == size
    # server, org, admin + 2 caseworkers + citizen, team
    assert dict(first.chains) == {"server": 1, "org": 1, "account": 4, "team": 1}
    assert first.subjects == first.directory_checked == 7
    assert first.events["member_add"] == 2 and first.events["revoke"] == 1
    assert first.events["admin_key"] >= 1 and first.events["server_key"] == 2
    saved = json.loads(state.read_text())
    assert saved["sth"] == first.head and saved["log_pk"] == first.log_key

    # the log grows; a day later the auditor demands a consistency proof from its head
    await grow(live.app, 3, 2, "later")
    await publish(live, scene.citizen, "key", new_key(scene.citizen, clock()))
    clock.advance(DAY)
    second = await audit(live.url, state_path=state, clock=clock)
    assert second.ok, second.to_json()
    assert second.consistency == "verified" and second.stored_head == first.head
    assert second.head is not None and second.head["size"] == size + 3 * 3 + 1
    assert json.loads(state.read_text())["sth"] == second.head

    # nothing new: the same head (or a fresher one of the same size) is accepted
    third = await audit(live.url, state_path=state, clock=clock, log_key=live.app[SECRETS].log_pk)
    assert third.ok and third.consistency == "same head", third.to_json()
    assert third.pinned_by == "--log-key"


async def test_audit_pages_through_a_longer_log(live: Live, clock: FakeClock) -> None:
    await populate(live, clock())
    await bulk(live.app, 150, 14, "bulk")  # 2250 more leaves: three pages
    report = await audit(live.url, clock=clock, concurrency=4)
    assert report.ok, report.lines()
    assert report.leaves > 2250 and report.subjects == 157

    # a server may answer shorter pages than asked: the auditor asks again from there
    def short_pages(path: str, body: Any) -> Any:
        if path == "/api/v1/transparency/leaves":
            return {"leaves": body["leaves"][:333]}
        return body

    live.tampering.fn = short_pages
    again = await audit(live.url, clock=clock)
    assert again.ok and again.leaves == report.leaves, again.to_json()


# --- a swapped key in the directory ------------------------------------------------------------
def attacker_chain(victim: str, like: list[tuple[int, LogEvent]]) -> list[LogEvent]:
    """A validly self-signed identity and encryption key for ``victim``, made by someone
    else, with the same seqs and times as the victim's real first two events."""
    seed = random_bytes(32)
    ts0, ts1 = like[0][1]["ts"], like[1][1]["ts"]
    created = like[0][1]["body"]["cert"]["created"]
    identity = certs.sign_cert(
        certs.make_cert(
            subject=victim,
            kind="citizen",
            org=None,
            use="sign",
            pk=sign_keypair(seed)[0],
            created=created,
        ),
        seed,
    )
    enc = certs.sign_cert(
        certs.make_cert(
            subject=victim,
            kind="citizen",
            org=None,
            use="encrypt",
            pk=box_keypair(random_bytes(32))[0],
            created=created,
            expires=created + 300 * DAY,
        ),
        seed,
    )
    first = next_event(None, subject=victim, type="identity", ts=ts0, body=identity)
    second = next_event(first, subject=victim, type="key", ts=ts1, body=enc)
    return [first, second]


def rewrite_keys(victim: str, fn: Callable[[Any], Any]) -> Callable[[str, Any], Any]:
    def tamper(path: str, body: Any) -> Any:
        return fn(body) if path == f"/api/v1/keys/{victim}" else body

    return tamper


async def test_swapped_key_in_the_directory_fails(
    live: Live, clock: FakeClock, tmp_path: Path
) -> None:
    scene = await populate(live, clock())
    victim = scene.citizen.id
    real = await chain_of(live.app, victim)
    fake = attacker_chain(victim, real)

    def swap(body: Any) -> Any:  # the attacker's events with the real proofs
        for entry, event in zip(body["events"], fake, strict=False):
            entry["leaf"] = b64e(event_leaf(event))
        return body

    live.tampering.fn = rewrite_keys(victim, swap)
    state = tmp_path / "audit.json"
    report = await audit(live.url, state_path=state, clock=clock)
    assert_failed(report, "directory", "unverifiable")
    bad = [f for f in report.findings if f.check == "directory"]
    assert [f.subject for f in bad] == [victim] and "BadProof" in bad[0].detail
    assert report.root_matches is True and not state.exists()


async def test_split_view_signed_with_the_log_key_fails(live: Live, clock: FakeClock) -> None:
    """A server that holds its log key and shows one client a forked tree with a swapped
    key: every proof in the answer verifies; only the audited head exposes it."""
    scene = await populate(live, clock())
    victim = scene.citizen.id
    real = await chain_of(live.app, victim)
    fake = attacker_chain(victim, real)
    leaves = await leaves_of(live.app)
    for (index, _), event in zip(real, fake, strict=False):
        leaves[index] = event_leaf(event)
    tree = MemoryTree()
    tree.extend(leaves)
    sth = make_tree_head(size=len(leaves), root=tree.root(), ts=clock())
    answer = {
        "sth": sth,
        "sig": sign_tree_head(sth, live.app[SECRETS].log_seed)["sig"],
        "events": [
            {
                "index": index,
                "leaf": b64e(leaves[index]),
                "path": [b64e(h) for h in tree.inclusion_proof(index)],
            }
            for index, _ in real[:2]  # the attacker's identity and key (the tail hidden)
        ],
    }
    live.tampering.fn = rewrite_keys(victim, lambda _: answer)
    report = await audit(live.url, clock=clock)
    assert_failed(report, "directory", "fork")
    assert [f.subject for f in report.findings] == [victim]
    assert "not consistent with the audited one" in report.findings[0].detail


async def test_withheld_chain_tail_fails(live: Live, clock: FakeClock) -> None:
    scene = await populate(live, clock())
    victim = scene.citizen.id  # identity, key, and the newer key the server hides

    def drop_last(body: Any) -> Any:
        body["events"] = body["events"][:-1]
        return body

    live.tampering.fn = rewrite_keys(victim, drop_last)
    report = await audit(live.url, clock=clock)
    assert_failed(report, "directory", "withheld")
    (finding,) = report.findings
    assert (finding.subject, finding.seq) == (victim, 2)


# --- tampered leaves ------------------------------------------------------------------------------
async def test_modified_leaf_in_the_database_fails(live: Live, clock: FakeClock) -> None:
    scene = await populate(live, clock())
    victim = scene.citizen.id
    index, event = (await chain_of(live.app, victim))[1]  # the citizen's first key
    cert = dict(event["body"]["cert"])
    cert["pk"] = b64e(box_keypair(random_bytes(32))[0])  # the attacker's key, same kid
    forged = cj({**event, "body": {**event["body"], "cert": cert}})
    async with live.app[DB].write() as conn:
        await conn.execute(update(log_leaves).where(log_leaves.c.idx == index).values(leaf=forged))
    report = await audit(live.url, clock=clock)
    assert_failed(report, "root", "root-mismatch")
    assert report.root_matches is False
    root = next(f for f in report.findings if f.check == "root")
    assert "not to the signed root" in root.detail
    # the next event no longer links to the forged one (the first finding, in log order) ...
    first = report.findings[0]
    assert (first.check, first.code, first.subject, first.seq) == (
        "chain", "broken-link", victim, 2,
    )  # fmt: skip
    # ... the forged certificate does not verify, and the directory cannot prove the leaf
    replayed = next(f for f in report.findings if f.check == "replay")
    assert (replayed.code, replayed.index, replayed.subject) == ("chain-invalid", index, victim)
    assert "BadSignature" in replayed.detail or "BrokenChain" in replayed.detail
    assert ("directory", "unverifiable") in codes(report)


async def test_forked_leaf_page_fails(live: Live, clock: FakeClock) -> None:
    await populate(live, clock())
    leaves = await leaves_of(live.app)
    other = account("page-fork")
    event = next_event(None, subject=other.id, type="identity", ts=clock(), body=other.identity)

    def fork_page(path: str, body: Any) -> Any:
        if path == "/api/v1/transparency/leaves":
            body["leaves"][len(leaves) - 1] = b64e(event_leaf(event))
        return body

    live.tampering.fn = fork_page
    report = await audit(live.url, clock=clock)
    assert_failed(report, "root", "root-mismatch")


# --- tree heads ---------------------------------------------------------------------------------
async def test_head_signed_by_another_key_fails(
    live: Live, clock: FakeClock, tmp_path: Path
) -> None:
    await populate(live, clock())
    state = tmp_path / "audit.json"
    assert (await audit(live.url, state_path=state, clock=clock)).ok
    pinned = json.loads(state.read_text())
    attacker = random_bytes(32)

    def resign(keep_log_key: bool) -> Callable[[str, Any], Any]:
        def tamper(path: str, body: Any) -> Any:
            if path != "/api/v1/transparency/sth":
                return body
            served = dict(sign_tree_head(body["sth"], attacker))
            if keep_log_key:
                served["log_key"] = body["log_key"]
            return served

        return tamper

    live.tampering.fn = resign(keep_log_key=False)
    report = await audit(live.url, state_path=state, clock=clock)
    assert_failed(report, "tree-head", "other-log-key")
    assert "KeyIdMismatch" in report.findings[0].detail

    live.tampering.fn = resign(keep_log_key=True)
    report = await audit(live.url, state_path=state, clock=clock)
    assert_failed(report, "tree-head", "bad-signature")

    # a whole swapped server (it announces the attacker's key) against the pinned key
    attacker_pk = b64e(sign_keypair(attacker)[0])

    def swap_server(path: str, body: Any) -> Any:
        if path == "/api/v1/server":
            return {**body, "log_pk": attacker_pk}
        return resign(keep_log_key=False)(path, body)

    live.tampering.fn = swap_server
    report = await audit(live.url, state_path=state, clock=clock)
    assert_failed(report, "pin", "log-key-changed")
    assert json.loads(state.read_text()) == pinned  # nothing saved on failure

    live.tampering.fn = None  # an honest server, but the operator pins another key
    report = await audit(live.url, clock=clock, log_key=sign_keypair(attacker)[0])
    assert_failed(report, "pin", "log-key-changed")


async def test_stale_head_fails(live: Live, clock: FakeClock) -> None:
    await populate(live, clock())

    def freeze(path: str, body: Any) -> Any:
        if path == "/api/v1/transparency/sth":
            return frozen
        return body

    frozen = await (await live.client.get("/api/v1/transparency/sth")).json()
    live.tampering.fn = freeze
    clock.advance(2 * DAY)
    report = await audit(live.url, clock=clock)
    assert_failed(report, "tree-head", "stale")


@asynccontextmanager
async def other_database(settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    if settings.db.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'fork.db'}"
        return
    async with postgres_database() as url:
        yield url


async def test_fork_and_rollback_against_the_stored_head(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    """Two databases behind the same URL and the same log key: the history the auditor
    stored and another one. Whichever it sees second is a fork (or a rollback)."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    tampering = Tampering()
    state_a, state_b = tmp_path / "a.json", tmp_path / "b.json"
    async with other_database(settings, tmp_path) as db_b:
        settings_b = Settings(data_dir=settings.data_dir, db=db_b).validate()
        async with serving(_app(settings, clock, tampering), port, tampering) as a:
            await setup_org(a.client, clock())
            report = await audit(url, state_path=state_a, clock=clock)
            assert report.ok, report.to_json()
            assert report.head is not None
            size_a = report.head["size"]
        async with serving(_app(settings_b, clock, tampering), port, tampering) as b:
            assert b.app[SECRETS].log_pk == a.app[SECRETS].log_pk  # the same log key
            # another history, with a signed head of the stored size (so a proof exists)
            await grow(b.app, size_a - 1, 0, "other")
            await b.app[KEYLOG].heads.ensure_head(force=True)
            await populate(b, clock())
            clock.advance(1000)
            report = await audit(url, state_path=state_a, clock=clock)
            assert_failed(report, "tree-head", "fork")
            assert report.leaves == 0  # stopped before the leaves
            assert "forked" in report.findings[0].detail
            assert "ForkDetected" in report.findings[0].detail
            assert json.loads(state_a.read_text())["sth"]["size"] == size_a
            report = await audit(url, state_path=state_b, clock=clock)
            assert report.ok and report.head is not None and report.head["size"] > size_a
        async with serving(_app(settings, clock, tampering), port, tampering):
            report = await audit(url, state_path=state_b, clock=clock)
            assert_failed(report, "tree-head", "rollback")
            assert "rolled back" in report.findings[0].detail


async def test_bad_consistency_proof_is_a_fork(
    live: Live, clock: FakeClock, tmp_path: Path
) -> None:
    await setup_org(live.client, clock())
    state = tmp_path / "audit.json"
    assert (await audit(live.url, state_path=state, clock=clock)).ok
    await grow(live.app, 2, 1, "more")

    def forge(path: str, body: Any) -> Any:
        if path == "/api/v1/transparency/consistency":
            body["path"][0] = b64e(bytes(32))
        return body

    live.tampering.fn = forge
    report = await audit(live.url, state_path=state, clock=clock)
    assert_failed(report, "tree-head", "fork")
    live.tampering.fn = None
    assert (await audit(live.url, state_path=state, clock=clock)).consistency == "verified"


# --- the command ----------------------------------------------------------------------------------
async def test_cli_runs_in_process(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``postbox keys audit`` through ``postbox.cli.main`` (the real clock: in a thread,
    with its own event loop, while this loop serves)."""
    tampering = Tampering()
    live = Live(await aiohttp_client(_app(settings, system_clock, tampering)), tampering)
    await populate(live, system_clock())
    state = tmp_path / "cli-state.json"

    def run(*args: str) -> int:
        return cli.main(["keys", "audit", *args])

    assert await asyncio.to_thread(run, live.url, "--state", str(state)) == EXIT_OK
    out = capsys.readouterr().out
    assert "AUDIT PASSED" in out and "findings      none" in out
    assert await asyncio.to_thread(run, live.url, "--state", str(state), "--json") == EXIT_OK
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["ok"] is True and data["exit"] == 0 and data["findings"] == []
    assert data["consistency"] in ("same head", "verified") and data["state_saved"] is True

    other = b64e(sign_keypair(random_bytes(32))[0])
    code = await asyncio.to_thread(run, live.url, "--log-key", other)
    assert code == EXIT_FAILED
    captured = capsys.readouterr()
    assert "AUDIT FAILED: [pin/log-key-changed]" in captured.err
    assert "AUDIT FAILED" in captured.out

    code = await asyncio.to_thread(run, f"http://127.0.0.1:{unused_port()}", "--json")
    assert code == EXIT_ERROR
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["exit"] == EXIT_ERROR and "TransportError" in data["error"]

    assert await asyncio.to_thread(run, live.url, "--log-key", "not-a-key") == 2
    assert await amain("ftp://example.org") == 2
