"""Challenge and login (PROTOCOL.md §4) through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update
from support.accounts import (
    Client,
    FakeClock,
    attempt,
    bearer,
    challenge,
    derive_for,
    login,
    make_account,
    new_account,
    proof,
    seed,
)

from postbox.crypto.bundle import (
    DEFAULT_MEM,
    DEFAULT_OPS,
    DERIVED_BYTES,
    keys_from_output,
    open_bundle,
    seal_bundle,
    with_gen,
)
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.login import fake_salt, sign_login
from postbox.crypto.primitives import random_bytes, sign_keypair
from postbox.mailbox.appkeys import DB, SECRETS
from postbox.mailbox.db.schema import accounts

PASSPHRASE = "Kirschblüte-Rathaus-7-Fähre-Quittung"
MIN_DELAY_MS = 60_000  # past any per-account delay of the default settings


def _problem(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body without its per-request members."""
    return {k: v for k, v in body.items() if k not in ("request_id", "instance")}


async def test_full_login_with_real_argon2id(client: Client) -> None:
    account = await seed(client.app, make_account("anna@example.org", passphrase=PASSPHRASE))
    answer = await challenge(client, "anna@example.org")
    assert set(answer) == {"salt", "ops", "mem", "challenge"}
    assert (answer["ops"], answer["mem"]) == (DEFAULT_OPS, DEFAULT_MEM)
    assert b64d(answer["salt"]) == account.salt
    keys = derive_for(PASSPHRASE, answer)  # what the browser does, real Argon2id
    assert keys.auth_pk == account.keys.auth_pk
    resp = await attempt(client, "anna@example.org", keys, challenge_b64=answer["challenge"])
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"account", "access_token", "refresh_token", "expires_in", "rekey"}
    assert body["account"] == account.id
    assert body["expires_in"] == 900
    assert body["rekey"] is None

    me = await client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status == 200
    assert await me.json() == {
        "account": account.id,
        "kind": "citizen",
        "org": None,
        "login": "anna@example.org",
        "identity_verified": True,
        "language": "de",
    }
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(body["access_token"]))
    assert resp.status == 200
    bundle = (await resp.json())["bundle"]
    assert open_bundle(bundle, keys.kek, account.id) == account.private_keys


async def test_wrong_passphrase_is_refused(client: Client) -> None:
    await seed(client.app, make_account("anna@example.org", passphrase=PASSPHRASE))
    answer = await challenge(client, "anna@example.org")
    keys = derive_for(PASSPHRASE + "!", answer)
    resp = await attempt(client, "anna@example.org", keys, challenge_b64=answer["challenge"])
    assert resp.status == 401
    body = await resp.json()
    assert body["type"] == "urn:postbox:problem:login-failed"
    assert "access_token" not in body


async def test_login_name_is_normalised(client: Client) -> None:
    account = await new_account(client, "Anna@Example.ORG")
    resp = await attempt(client, "  Anna@EXAMPLE.org\n", account.keys)
    assert resp.status == 200
    assert (await resp.json())["account"] == account.id
    other_case = await attempt(client, "anna@example.org", account.keys)  # local part keeps case
    assert other_case.status == 401


async def test_unknown_names_look_like_accounts(client: Client) -> None:
    await new_account(client, "anna@example.org")
    real = await challenge(client, "anna@example.org")
    ghost = await challenge(client, "ghost@example.org")
    again = await challenge(client, "ghost@EXAMPLE.org")
    other = await challenge(client, "phantom@example.org")
    for answer in (real, ghost, again, other):
        assert set(answer) == {"salt", "ops", "mem", "challenge"}
        assert (answer["ops"], answer["mem"]) == (DEFAULT_OPS, DEFAULT_MEM)
        assert len(b64d(answer["salt"])) == 16
        assert len(b64d(answer["challenge"])) == 32
    # deterministic per (normalised) name, different between names, fresh challenges
    assert ghost["salt"] == again["salt"] != other["salt"]
    assert ghost["challenge"] != again["challenge"]
    k_fake = client.app[SECRETS].fake_salt_key
    assert b64d(ghost["salt"]) == fake_salt(k_fake, "ghost@example.org")


async def test_unknown_name_and_wrong_key_answer_alike(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    stranger = keys_from_output(random_bytes(DERIVED_BYTES))
    wrong_key = await attempt(client, account.login, stranger)
    unknown = await attempt(client, "ghost@example.org", stranger)
    assert wrong_key.status == unknown.status == 401
    assert set(wrong_key.headers) - {"Date"} == set(unknown.headers) - {"Date"}
    assert _problem(await wrong_key.json()) == _problem(await unknown.json())


async def test_known_and_unknown_names_run_the_same_queries(
    client: Client, clock: FakeClock
) -> None:
    account = await new_account(client, "anna@example.org")
    stranger = keys_from_output(random_bytes(DERIVED_BYTES))
    await challenge(client, "warm-up@example.org")  # runs the once-a-minute sweep
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.replace("\n", " ").split()
        seen.append(" ".join(words[:3]))

    engine = client.app[DB].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        runs: dict[str, list[list[str]]] = {}
        for name in (account.login, "ghost@example.org"):
            clock.advance(MIN_DELAY_MS)
            seen.clear()
            await challenge(client, name)
            asked = list(seen)
            seen.clear()
            assert (await attempt(client, name, stranger)).status == 401
            runs[name] = [asked, list(seen)]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    (known_challenge, known_login), (ghost_challenge, ghost_login) = runs.values()
    # the challenge attempt itself issues the same statements
    assert known_challenge == ghost_challenge
    assert len(known_login) == len(ghost_login)
    # they differ only where the failure is counted: the account's row, or the name's row
    different = [(k, g) for k, g in zip(known_login, ghost_login, strict=True) if k != g]
    assert different == [("UPDATE credentials SET", "INSERT INTO rate_limits")]


async def test_every_failure_has_the_same_answer(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    other = await new_account(client, "ben@example.org")
    login_name = account.login
    answers: dict[str, dict[str, Any]] = {}

    async def send(label: str, body: dict[str, Any]) -> None:
        resp = await client.post("/api/v1/auth/login", json=body)
        assert resp.status == 401, label
        answers[label] = _problem(await resp.json())
        clock.advance(MIN_DELAY_MS)  # past the per-account delay this failure started

    def body(ch: str, **changes: Any) -> dict[str, Any]:
        base = {
            "login": login_name,
            "challenge": ch,
            "auth_pk": b64e(account.keys.auth_pk),
            "signature": proof(client, account.keys.auth_seed, ch, login_name, "pass"),
            "method": "pass",
        }
        base.update(changes)
        return base

    ch = (await challenge(client, login_name))["challenge"]
    bad_sig = body(ch)
    bad_sig["signature"] = b64e(bytes(64))
    await send("bad signature", bad_sig)

    ch = (await challenge(client, login_name))["challenge"]
    await send(
        "other account's key",
        {
            **body(ch),
            "auth_pk": b64e(other.keys.auth_pk),
            "signature": proof(client, other.keys.auth_seed, ch, login_name, "pass"),
        },
    )

    ch = (await challenge(client, login_name))["challenge"]
    phished = sign_login(
        account.keys.auth_seed, b64d(ch), "https://evil.example", login_name, "pass"
    )
    await send("another origin", {**body(ch), "signature": b64e(phished)})

    ch = (await challenge(client, login_name))["challenge"]
    await send(
        "pass key with method recovery",
        {
            **body(ch),
            "method": "recovery",
            "signature": proof(client, account.keys.auth_seed, ch, login_name, "recovery"),
        },
    )

    await send("unknown challenge", body(b64e(random_bytes(32))))

    ch = (await challenge(client, "ben@example.org"))["challenge"]
    await send("challenge for another name", body(ch))

    ch = (await challenge(client, login_name))["challenge"]
    clock.advance(120_001)
    await send("expired challenge", body(ch))

    ch = (await challenge(client, login_name))["challenge"]
    ok = await client.post("/api/v1/auth/login", json=body(ch))
    assert ok.status == 200
    await send("reused challenge", body(ch))

    ch = (await challenge(client, "ghost@example.org"))["challenge"]
    await send(
        "unknown name",
        {
            **body(ch),
            "login": "ghost@example.org",
            "signature": proof(client, account.keys.auth_seed, ch, "ghost@example.org", "pass"),
        },
    )

    first = next(iter(answers.values()))
    assert first["type"] == "urn:postbox:problem:login-failed"
    for label, answer in answers.items():
        assert answer == first, label


async def test_challenge_lives_120_seconds(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    ch = (await challenge(client, account.login))["challenge"]
    clock.advance(120_000)  # the last valid millisecond
    resp = await attempt(client, account.login, account.keys, challenge_b64=ch)
    assert resp.status == 200


async def test_malformed_requests(client: Client) -> None:
    payloads: list[Any] = [{}, {"login": 5}, {"login": "a", "extra": 1}, []]
    for payload in payloads:
        resp = await client.post("/api/v1/auth/challenge", json=payload)
        assert resp.status == 400, payload
        assert (await resp.json())["type"] == "urn:postbox:problem:malformed"
    resp = await client.post("/api/v1/auth/challenge", json={"login": "a\u0000b"})
    assert resp.status == 400
    assert (await resp.json())["type"] == "urn:postbox:problem:invalid-login"
    resp = await client.post("/api/v1/auth/challenge", json={"login": " "})
    assert (await resp.json())["type"] == "urn:postbox:problem:invalid-login"
    resp = await client.post("/api/v1/auth/challenge", data=b"login=x")
    assert resp.status == 415
    resp = await client.post(
        "/api/v1/auth/challenge", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    good = {
        "login": "anna@example.org",
        "challenge": b64e(bytes(32)),
        "auth_pk": b64e(bytes(32)),
        "signature": b64e(bytes(64)),
        "method": "pass",
    }
    for change in (
        {"challenge": b64e(bytes(31))},
        {"auth_pk": b64e(bytes(32)) + "="},
        {"signature": "!" * 86},
        {"method": "password"},
        {"extra": True},
    ):
        resp = await client.post("/api/v1/auth/login", json={**good, **change})
        assert resp.status == 400, change
        assert (await resp.json())["type"] == "urn:postbox:problem:malformed"
    missing = dict(good)
    del missing["method"]
    resp = await client.post("/api/v1/auth/login", json=missing)
    assert resp.status == 400
    # a key that is not a valid point is just a failed login
    resp = await client.post("/api/v1/auth/login", json=good)
    assert resp.status == 401


async def test_old_parameters_ask_for_rekey(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org", ops=4)
    answer = await challenge(client, account.login)
    assert answer["ops"] == 4
    body = await login(client, account)
    assert body["rekey"] == {"ops": DEFAULT_OPS, "mem": DEFAULT_MEM}
    # the client re-seals at the defaults and sends it as a passphrase change
    new_keys = keys_from_output(random_bytes(DERIVED_BYTES))
    salt = random_bytes(16)
    bundle = seal_bundle(
        with_gen(account.private_keys, 2),
        new_keys.kek,
        account.id,
        kind="pass",
        salt=salt,
        ops=DEFAULT_OPS,
        mem=DEFAULT_MEM,
    )
    ch = (await challenge(client, account.login))["challenge"]
    change = {
        "challenge": ch,
        "signature": proof(client, account.keys.auth_seed, ch, account.login, "pass"),
        "method": "pass",
        "signer_pk": b64e(account.keys.auth_pk),
        "auth_pk": b64e(new_keys.auth_pk),
        "bundle": bundle,
        "expected_gen": 1,
    }
    resp = await client.post(
        "/api/v1/me/passphrase",
        data=cj(change),
        headers={**bearer(body["access_token"]), "Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    answer = await challenge(client, account.login)
    assert (answer["ops"], answer["mem"], b64d(answer["salt"])) == (DEFAULT_OPS, DEFAULT_MEM, salt)
    resp = await attempt(client, account.login, new_keys)
    assert resp.status == 200
    assert (await resp.json())["rekey"] is None


async def test_disabled_account_cannot_log_in_or_use_its_sessions(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    token = (await login(client, account))["access_token"]
    async with client.app[DB].write() as conn:
        await conn.execute(
            update(accounts).where(accounts.c.id == account.id).values(status="disabled")
        )
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401
    assert (await resp.json())["type"] == "urn:postbox:problem:session-ended"
    resp = await attempt(client, account.login, account.keys)
    assert resp.status == 401
    assert (await resp.json())["type"] == "urn:postbox:problem:login-failed"


async def test_recovery_key_logs_in_with_method_recovery_only(
    client: Client, clock: FakeClock
) -> None:
    account = await new_account(client, "anna@example.org")
    resp = await attempt(client, account.login, account.recovery, method="pass")
    assert resp.status == 401
    clock.advance(MIN_DELAY_MS)
    body = await login(client, account, method="recovery")
    assert body["rekey"] is None
    sessions = await client.get("/api/v1/sessions", headers=bearer(body["access_token"]))
    assert [s["method"] for s in (await sessions.json())["sessions"]] == ["recovery"]


def test_fixture_keys_are_valid_points() -> None:
    """The fast test keys are ordinary Ed25519 keys (no Argon2id, same server view)."""
    keys = keys_from_output(random_bytes(DERIVED_BYTES))
    assert sign_keypair(keys.auth_seed)[0] == keys.auth_pk
