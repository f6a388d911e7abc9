"""Access tokens, refresh rotation with reuse detection, logout and session revocation."""

from __future__ import annotations

from jose import jwt
from support.accounts import Client, FakeClock, bearer, login, new_account

from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import AUDIT, DB, SECRETS, SETTINGS

MINUTE = 60_000


async def _status(client: Client, token: str) -> tuple[int, str]:
    resp = await client.get("/api/v1/me", headers=bearer(token))
    body = await resp.json()
    return resp.status, body.get("type", "").rsplit(":", 1)[-1] if resp.status != 200 else "ok"


async def _refresh(client: Client, token: str) -> tuple[int, dict[str, object]]:
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    return resp.status, await resp.json()


async def test_access_token_claims(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.get_unverified_claims(token)
    origin = client.app[SETTINGS].origin
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "sub", "sid", "kind", "org"}
    assert claims["iss"] == claims["aud"] == origin
    assert claims["iat"] == clock.now // 1000
    assert claims["exp"] - claims["iat"] == 15 * 60 == body["expires_in"]
    assert (claims["sub"], claims["kind"], claims["org"]) == (account.id, "citizen", None)
    sessions = await client.get("/api/v1/sessions", headers=bearer(token))
    assert [s["id"] for s in (await sessions.json())["sessions"]] == [claims["sid"]]


async def test_access_token_expires(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    clock.advance(15 * MINUTE - 1000)
    assert await _status(client, body["access_token"]) == (200, "ok")
    clock.advance(1000)
    assert await _status(client, body["access_token"]) == (401, "token-expired")
    status, fresh = await _refresh(client, body["refresh_token"])
    assert status == 200
    assert set(fresh) == {"account", "access_token", "refresh_token", "expires_in"}
    assert await _status(client, str(fresh["access_token"])) == (200, "ok")


async def test_forged_tokens_are_refused(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    claims = jwt.get_unverified_claims(body["access_token"])
    key = client.app[SECRETS].token_key
    origin = client.app[SETTINGS].origin
    forged = [
        jwt.encode(claims, b"another key that is 32 bytes lon", algorithm="HS256"),
        jwt.encode(claims, key, algorithm="HS512"),
        jwt.encode({**claims, "aud": "https://elsewhere.example"}, key, algorithm="HS256"),
        jwt.encode({**claims, "iss": "https://elsewhere.example"}, key, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "sid"}, key, algorithm="HS256"),
        jwt.encode({**claims, "exp": str(claims["exp"])}, key, algorithm="HS256"),
        jwt.encode({**claims, "sid": b64e(random_bytes(16))}, key, algorithm="HS256"),
    ]
    header, payload, _ = body["access_token"].split(".")
    forged.append(f"{header}.{payload}.")  # no signature
    unsigned_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    forged.append(f"{unsigned_header}.{payload}.")
    for token in forged:
        status, code = await _status(client, token)
        assert status == 401, token
        assert code in ("invalid-token", "session-ended"), token
    assert origin  # the genuine token still works
    assert await _status(client, body["access_token"]) == (200, "ok")
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        resp = await client.get("/api/v1/me", headers=headers)
        assert resp.status == 401
        assert "WWW-Authenticate" in resp.headers


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: Client, clock: FakeClock
) -> None:
    account = await new_account(client, "anna@example.org")
    first = await login(client, account)
    clock.advance(MINUTE)
    status, second = await _refresh(client, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    clock.advance(MINUTE)
    status, third = await _refresh(client, str(second["refresh_token"]))
    assert status == 200
    # a thief replays the first (rotated) token: the whole session ends
    status, problem = await _refresh(client, first["refresh_token"])
    assert status == 401
    assert problem["type"] == "urn:postbox:problem:refresh-reused"
    status, problem = await _refresh(client, str(third["refresh_token"]))
    assert status == 401
    assert problem["type"] == "urn:postbox:problem:session-ended"
    for token in (first["access_token"], second["access_token"], third["access_token"]):
        assert await _status(client, str(token)) == (401, "session-ended")
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn)
    revoked = [e for e in entries if e.action == "session-revoked"]
    assert [e.details["reason"] for e in revoked] == ["refresh-reuse"]


async def test_refresh_updates_last_seen_and_slides_expiry(
    client: Client, clock: FakeClock
) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    start = clock.now
    clock.advance(20 * MINUTE)
    status, fresh = await _refresh(client, body["refresh_token"])
    assert status == 200
    resp = await client.get("/api/v1/sessions", headers=bearer(str(fresh["access_token"])))
    (session,) = (await resp.json())["sessions"]
    assert session["created"] == start
    assert session["last_seen"] == clock.now
    assert session["expires"] == clock.now + 30 * 24 * 3600 * 1000


async def test_idle_session_expires(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    clock.advance(30 * 24 * 3600 * 1000)
    status, problem = await _refresh(client, body["refresh_token"])
    assert status == 401
    assert problem["type"] == "urn:postbox:problem:session-ended"


async def test_bad_refresh_tokens(client: Client) -> None:
    for token in ("", "x", b64e(random_bytes(32)), b64e(random_bytes(31))):
        status, problem = await _refresh(client, token)
        assert status == 401
        assert problem["type"] == "urn:postbox:problem:invalid-refresh-token"
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": 5})
    assert resp.status == 400


async def test_logout_is_immediate(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    body = await login(client, account)
    other = await login(client, account)
    resp = await client.post("/api/v1/auth/logout", headers=bearer(body["access_token"]))
    assert resp.status == 204
    assert await _status(client, body["access_token"]) == (401, "session-ended")
    status, problem = await _refresh(client, body["refresh_token"])
    assert (status, problem["type"]) == (401, "urn:postbox:problem:session-ended")
    assert await _status(client, other["access_token"]) == (200, "ok")
    resp = await client.post("/api/v1/auth/logout")
    assert resp.status == 401


async def test_list_and_revoke_own_sessions(client: Client, clock: FakeClock) -> None:
    anna = await new_account(client, "anna@example.org")
    ben = await new_account(client, "ben@example.org")
    laptop = await login(client, anna, headers={"User-Agent": "Laptop Firefox"})
    clock.advance(MINUTE)
    phone = await login(client, anna, headers={"User-Agent": "Phone"})
    bens = await login(client, ben)
    resp = await client.get("/api/v1/sessions", headers=bearer(laptop["access_token"]))
    listed = (await resp.json())["sessions"]
    assert [(s["client"], s["current"]) for s in listed] == [
        ("Phone", False),
        ("Laptop Firefox", True),
    ]
    assert set(listed[0]) == {
        "id",
        "created",
        "last_seen",
        "expires",
        "method",
        "client",
        "current",
    }
    phone_sid = jwt.get_unverified_claims(phone["access_token"])["sid"]
    bens_sid = jwt.get_unverified_claims(bens["access_token"])["sid"]

    # another account's session looks like no session at all
    for sid in (bens_sid, b64e(random_bytes(16)), "not-an-id"):
        resp = await client.delete(
            f"/api/v1/sessions/{sid}", headers=bearer(laptop["access_token"])
        )
        assert resp.status == 404
        assert (await resp.json())["type"] == "urn:postbox:problem:no-such-session"
    assert await _status(client, bens["access_token"]) == (200, "ok")

    resp = await client.delete(
        f"/api/v1/sessions/{phone_sid}", headers=bearer(laptop["access_token"])
    )
    assert resp.status == 204
    assert await _status(client, phone["access_token"]) == (401, "session-ended")
    status, _ = await _refresh(client, phone["refresh_token"])
    assert status == 401
    resp = await client.delete(
        f"/api/v1/sessions/{phone_sid}", headers=bearer(laptop["access_token"])
    )
    assert resp.status == 404
    resp = await client.get("/api/v1/sessions", headers=bearer(laptop["access_token"]))
    assert [s["current"] for s in (await resp.json())["sessions"]] == [True]
    resp = await client.get("/api/v1/sessions")
    assert resp.status == 401
