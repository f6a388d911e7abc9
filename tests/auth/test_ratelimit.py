"""Online guessing: per-account delay (the same for unknown names) and per-address limits."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from support.accounts import Client, FakeClock, MakeClient, attempt, challenge, new_account

from postbox.crypto.bundle import DERIVED_BYTES, keys_from_output
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import DB
from postbox.mailbox.auth.commands import Caller
from postbox.mailbox.auth.ratelimit import (
    FAILURE_MEMORY_MS,
    DelayPolicy,
    DelayState,
    client_address,
    retry_after_s,
)
from postbox.mailbox.db.schema import challenges, rate_limits, refresh_tokens

Outcome = tuple[int, str, str | None]  # status, problem code, Retry-After


async def _outcome(resp: Any) -> Outcome:
    body = await resp.json()
    code = body["type"].rsplit(":", 1)[-1] if resp.status != 200 else "ok"
    return resp.status, code, resp.headers.get("Retry-After")


async def test_failures_delay_the_account_exponentially(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    wrong = keys_from_output(random_bytes(DERIVED_BYTES))
    # defaults: base 500 ms, doubled per failure, capped at 60 s
    expected = [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
    for n, delay in enumerate(expected, 1):
        assert await _outcome(await attempt(client, account.login, wrong)) == (
            401,
            "login-failed",
            None,
        ), n
        # inside the delay nothing is evaluated — not even the right key
        right = await _outcome(await attempt(client, account.login, account.keys))
        assert right == (429, "login-delayed", str(retry_after_s(delay))), n
        clock.advance(delay - 1)
        early = await _outcome(await attempt(client, account.login, account.keys))
        assert early == (429, "login-delayed", "1"), n
        clock.advance(1)
    # attempts during a delay did not count: the right key now just works and resets
    assert (await _outcome(await attempt(client, account.login, account.keys)))[0] == 200
    assert (await _outcome(await attempt(client, account.login, wrong)))[1] == "login-failed"
    assert await _outcome(await attempt(client, account.login, wrong)) == (
        429,
        "login-delayed",
        "1",
    )


async def _probe(client: Client, clock: FakeClock, login: str) -> list[Outcome]:
    """What a guesser sees for one name: fail, retry at once, wait, fail, wait a day, …"""
    wrong = keys_from_output(random_bytes(DERIVED_BYTES))
    seen: list[Outcome] = []
    for step in (0, 0, 500, 0, 999, 1, 0, 3000, 0, FAILURE_MEMORY_MS + 4000, 0):
        clock.advance(step)
        seen.append(await _outcome(await attempt(client, login, wrong)))
    return seen


async def test_unknown_names_are_delayed_like_accounts(client: Client, clock: FakeClock) -> None:
    await new_account(client, "anna@example.org")
    real = await _probe(client, clock, "anna@example.org")
    ghost = await _probe(client, clock, "ghost@example.org")
    assert real == ghost
    assert {o[1] for o in real} == {"login-failed", "login-delayed"}


async def test_per_address_limit(make_client: MakeClient, clock: FakeClock) -> None:
    client = await make_client(login_rate_per_minute=3)
    account = await new_account(client, "anna@example.org")
    clock.now -= clock.now % 60_000  # the start of a window
    for _ in range(3):
        await challenge(client, "someone@example.org")
    resp = await client.post("/api/v1/auth/challenge", json={"login": "x@example.org"})
    assert await _outcome(resp) == (429, "too-many-attempts", "60")
    clock.advance(59_500)
    resp = await client.post("/api/v1/auth/challenge", json={"login": "x@example.org"})
    assert await _outcome(resp) == (429, "too-many-attempts", "1")
    clock.advance(500)
    chs = [(await challenge(client, account.login))["challenge"] for _ in range(3)]
    # login attempts are counted separately from challenges
    for ch in chs:
        resp = await attempt(client, account.login, account.keys, challenge_b64=ch)
        assert resp.status == 200
    resp = await attempt(
        client, account.login, account.keys, challenge_b64=chs[0]
    )  # over the limit: refused before anything else is looked at
    assert (await _outcome(resp))[:2] == (429, "too-many-attempts")


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    make_client: MakeClient, clock: FakeClock
) -> None:
    clock.now -= clock.now % 60_000
    direct = await make_client(login_rate_per_minute=1)
    for n, address in enumerate(("203.0.113.1", "203.0.113.2")):
        resp = await direct.post(
            "/api/v1/auth/challenge",
            json={"login": "a@example.org"},
            headers={"X-Forwarded-For": address},
        )
        assert resp.status == (200 if n == 0 else 429)
    proxied = await make_client(login_rate_per_minute=1, trusted_proxy=True)
    for address in ("203.0.113.1", "198.51.100.7, 203.0.113.2", "2001:db8::1"):
        resp = await proxied.post(
            "/api/v1/auth/challenge",
            json={"login": "a@example.org"},
            headers={"X-Forwarded-For": address},
        )
        assert resp.status == 200, address
    resp = await proxied.post(
        "/api/v1/auth/challenge",
        json={"login": "a@example.org"},
        headers={"X-Forwarded-For": "2001:db8::ffff"},  # the same /64
    )
    assert resp.status == 429


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("127.0.0.1", None, False, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", False, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", True, "203.0.113.9"),
        ("127.0.0.1", "10.0.0.1, 203.0.113.9 ", True, "203.0.113.9"),
        ("127.0.0.1", "", True, "127.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", None, False, "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", None, False, "192.0.2.1"),
        ("127.0.0.1", "[2001:db8::1]", True, "2001:db8::/64"),
        (None, None, False, ""),
        ("unix-socket", None, False, "unix-socket"),
    ],
)
def test_client_address(
    remote: str | None, forwarded: str | None, trusted: bool, expected: str
) -> None:
    assert client_address(remote, forwarded, trusted_proxy=trusted) == expected


def test_delay_policy() -> None:
    policy = DelayPolicy(500, 60_000)
    assert [policy.delay_ms(n) for n in range(0, 10)] == [
        0,
        500,
        1000,
        2000,
        4000,
        8000,
        16000,
        32000,
        60000,
        60000,
    ]
    assert policy.delay_ms(10**6) == 60_000
    state = policy.after_failure(DelayState(), 1000)
    assert state == DelayState(1, 1500)
    assert policy.wait_ms(state, 1000) == 500
    assert policy.wait_ms(state, 1500) == 0
    assert policy.after_failure(state, 1500) == DelayState(2, 2500)
    # a day after the wait ended, the history is forgotten
    later = 1500 + FAILURE_MEMORY_MS
    assert policy.current(state, later) == DelayState()
    assert policy.after_failure(state, later) == DelayState(1, later + 500)
    assert retry_after_s(1) == 1
    assert retry_after_s(1001) == 2


def test_caller_drops_control_characters() -> None:
    caller = Caller.of("127.0.0.1", "Mozilla\x07/5.0\u202e" + "x" * 500)
    assert caller.client.startswith("Mozilla/5.0x")
    assert len(caller.client) == 200


async def test_housekeeping_drops_what_no_longer_matters(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    wrong = keys_from_output(random_bytes(DERIVED_BYTES))
    assert (await attempt(client, "ghost@example.org", wrong)).status == 401
    grant = await attempt(client, account.login, account.keys)
    tokens = await grant.json()
    resp = await client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert resp.status == 204
    await challenge(client, account.login)  # left unused

    async def counts() -> dict[str, int]:
        async with client.app[DB].read() as conn:
            return {
                t.name: len((await conn.execute(select(t))).all())
                for t in (challenges, rate_limits, refresh_tokens)
            }

    before = await counts()
    assert before["challenges"] == 3
    assert before["refresh_tokens"] == 1
    assert before["rate_limits"] == 3  # challenge-ip, login-ip, the ghost's delay state
    clock.advance(FAILURE_MEMORY_MS + 60_000)
    await challenge(client, "someone@example.org")  # the first request after a minute sweeps
    after = await counts()
    # only what the sweeping request itself just wrote is left
    assert after == {"challenges": 1, "rate_limits": 1, "refresh_tokens": 0}
