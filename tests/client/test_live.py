"""The client library against the real server (SQLite and PostgreSQL): activation, login,
tokens, sessions, recovery, the bundle's generation, and the owner's self-check."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.client import PASSPHRASE, Live, live_server, operator_invites_admin

from postbox.client import Client
from postbox.client.errors import (
    NotLoggedIn,
    RateLimitedError,
    UnauthorizedError,
    VerificationFailed,
)
from postbox.client.session import wall_clock
from postbox.client.state import Tokens
from postbox.crypto.recovery import parse_recovery_key

LOGIN = "verwaltung@stadt.example"
NEW_PASSPHRASE = "Neue-Brücke-Hafen-Laterne-58-Moos"


def tokens_of(c: Client) -> Tokens | None:
    # a function call: mypy keeps narrowing attributes across awaits otherwise
    return c.session.state.tokens


class Clock:
    """A clock the test moves (real time plus ``offset``); ``frozen`` stops real time, so
    that a delay the test relies on cannot run out while the client computes Argon2id on a
    busy machine."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.offset = 0
        self._at = wall_clock() if frozen else None

    def __call__(self) -> int:
        return (wall_clock() if self._at is None else self._at) + self.offset


async def _activated(live: Live, state: Path, clock: Clock | None = None) -> tuple[Client, str]:
    _, code = await operator_invites_admin(live)
    c = Client(live.url, state_dir=state, clock=clock or wall_clock)
    await c.connect()
    done = await c.account.activate(code, LOGIN, PASSPHRASE, "de")
    result = await c.account.login(LOGIN, PASSPHRASE, activated=done)
    assert result.account == done.account
    assert result.check.pending  # an admin's identity waits for the org root
    return c, done.recovery_key


async def test_login_refresh_sessions_logout(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with live_server(db_url, tmp_path / "var") as live:
        c, _ = await _activated(live, tmp_path / "a", clock)
        async with c:
            me = await c.account.whoami()
            assert me["login"] == LOGIN and me["kind"] == "admin"
            first = c.session.state.tokens
            assert first is not None
            # the access token is about to expire on the client's clock: refreshed first
            clock.offset = 15 * 60 * 1000
            await c.account.whoami()
            second = c.session.state.tokens
            assert second is not None and second.refresh != first.refresh
            # a token the server refuses (401) is refreshed once and the call retried
            second.access = "x.y.z"
            await c.account.whoami()
            assert c.session.state.tokens is not None
            assert c.session.state.tokens.access != "x.y.z"
            clock.offset = 0

            # a second device; the first revokes it
            async with Client(live.url, state_dir=tmp_path / "b") as other:
                await other.account.login(LOGIN, PASSPHRASE)
                sessions = await c.account.sessions()
                assert len(sessions) == 2
                theirs = [s for s in sessions if not s["current"]]
                await c.account.revoke_session(theirs[0]["id"])
                with pytest.raises(NotLoggedIn):
                    await other.account.whoami()
                assert tokens_of(other) is None

            await c.account.logout()
            assert tokens_of(c) is None
            with pytest.raises(NotLoggedIn):
                await c.account.whoami()


async def test_wrong_passphrase_and_rollback(db_url: str, tmp_path: Path) -> None:
    server_clock = Clock(frozen=True)  # the 500 ms delay after the failure must still hold
    async with live_server(db_url, tmp_path / "var", clock=server_clock) as live:
        c, _ = await _activated(live, tmp_path / "a")
        async with c:
            await c.account.logout()
            with pytest.raises(UnauthorizedError):
                await c.account.login(LOGIN, PASSPHRASE + "x")
            with pytest.raises(RateLimitedError) as limited:
                await c.account.login(LOGIN, PASSPHRASE)
            assert limited.value.retry_after is not None and limited.value.retry_after >= 1
            server_clock.offset += limited.value.retry_after * 1000
            # this client saw a newer bundle than the server now serves: a rollback
            c.session.state.gens["pass"] = 99
            with pytest.raises(VerificationFailed) as caught:
                await c.account.login(LOGIN, PASSPHRASE)
            assert caught.value.code == "StaleGeneration"


async def test_recovery_then_new_passphrase(db_url: str, tmp_path: Path) -> None:
    server_clock = Clock()
    async with live_server(db_url, tmp_path / "var", clock=server_clock) as live:
        c, recovery_key = await _activated(live, tmp_path / "a")
        parse_recovery_key(recovery_key)
        await c.close()
        async with Client(live.url, state_dir=tmp_path / "new-device") as fresh:
            result = await fresh.account.recovery_login(LOGIN, recovery_key.lower())
            assert result.keyring.kind == "recovery"
            keyring = await fresh.account.change_passphrase(result.keyring, NEW_PASSPHRASE)
            assert keyring.kind == "pass"
            assert keyring.identity.kid == result.keyring.identity.kid
        async with Client(live.url, state_dir=tmp_path / "third") as third:
            with pytest.raises(UnauthorizedError):
                await third.account.login(LOGIN, PASSPHRASE)
            server_clock.offset += 60_000  # past the per-account delay after a failure
            again = await third.account.login(LOGIN, NEW_PASSPHRASE)
            assert again.keyring.identity.kid == keyring.identity.kid
            # the bundle remembers the verified tree head for the next device
            updated = await third.account.open_keys(NEW_PASSPHRASE)
            assert updated.private_keys["log"] is not None
