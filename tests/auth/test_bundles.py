"""Bundles: served only to sessions, replaced by compare-and-swap on ``gen``."""

from __future__ import annotations

import json
from typing import Any

from support.accounts import Account, Client, bearer, login, new_account

from postbox.crypto.bundle import open_bundle, seal_bundle, with_gen
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import AUDIT, DB


def _bundle_at(
    account: Account, kind: str, gen: int, *, salt: bytes | None = None
) -> dict[str, Any]:
    pks = with_gen(account.private_keys, gen)
    if kind == "pass":
        bundle = seal_bundle(
            pks,
            account.keys.kek,
            account.id,
            kind="pass",
            salt=salt or account.salt,
            ops=account.ops,
            mem=account.mem,
        )
    else:
        bundle = seal_bundle(pks, account.recovery.kek, account.id, kind="recovery")
    return dict(bundle)


async def _put(
    client: Client, token: str, kind: str, body: Any, *, raw: bytes | None = None
) -> Any:
    return await client.put(
        f"/api/v1/me/bundles/{kind}",
        data=raw if raw is not None else cj(body),
        headers={**bearer(token), "Content-Type": "application/json"},
    )


async def test_bundles_are_served_to_their_session_only(client: Client) -> None:
    anna = await new_account(client, "anna@example.org")
    ben = await new_account(client, "ben@example.org")
    token = (await login(client, anna))["access_token"]
    for kind, expected in (("pass", anna.pass_bundle), ("recovery", anna.recovery_bundle)):
        resp = await client.get(f"/api/v1/me/bundles/{kind}", headers=bearer(token))
        assert resp.status == 200
        assert await resp.json() == {"bundle": expected}
        resp = await client.get(f"/api/v1/me/bundles/{kind}")
        assert resp.status == 401
    resp = await client.get("/api/v1/me/bundles/other", headers=bearer(token))
    assert resp.status == 404
    bens = (await login(client, ben))["access_token"]
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(bens))
    assert (await resp.json())["bundle"] == ben.pass_bundle


async def test_compare_and_swap_on_gen(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    token = (await login(client, account))["access_token"]
    gen2 = _bundle_at(account, "pass", 2)
    resp = await _put(client, token, "pass", {"bundle": gen2, "expected_gen": 1})
    assert resp.status == 200
    assert await resp.json() == {"gen": 2}
    # a second writer that still saw gen 1 loses, and learns the current gen
    resp = await _put(client, token, "pass", {"bundle": gen2, "expected_gen": 1})
    assert resp.status == 409
    problem = await resp.json()
    assert problem["type"] == "urn:postbox:problem:gen-conflict"
    assert problem["gen"] == 2
    # the new gen must be exactly expected + 1
    for gen in (2, 4):
        resp = await _put(
            client, token, "pass", {"bundle": _bundle_at(account, "pass", gen), "expected_gen": 2}
        )
        assert resp.status == 400, gen
        assert (await resp.json())["type"] == "urn:postbox:problem:invalid-bundle"
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(token))
    served = (await resp.json())["bundle"]
    assert served == gen2
    assert open_bundle(served, account.keys.kek, account.id)["gen"] == 2

    rec2 = _bundle_at(account, "recovery", 2)
    resp = await _put(client, token, "recovery", {"bundle": rec2, "expected_gen": 1})
    assert resp.status == 200
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn)
    updates = [e.details for e in entries if e.action == "bundle-updated"]
    assert updates == [{"kind": "pass", "gen": 2}, {"kind": "recovery", "gen": 2}]


async def test_bad_bundle_updates(client: Client) -> None:
    account = await new_account(client, "anna@example.org")
    token = (await login(client, account))["access_token"]
    gen2 = _bundle_at(account, "pass", 2)

    async def problem(kind: str, body: Any, raw: bytes | None = None) -> tuple[int, str]:
        resp = await _put(client, token, kind, body, raw=raw)
        return resp.status, (await resp.json())["type"].rsplit(":", 1)[-1]

    # the wrong kind for the path, a broken bundle, parameters changed outside a passphrase change
    assert await problem("recovery", {"bundle": gen2, "expected_gen": 1}) == (400, "invalid-bundle")
    broken = {**gen2, "nonce": "short"}
    assert await problem("pass", {"bundle": broken, "expected_gen": 1}) == (400, "invalid-bundle")
    extra = {**gen2, "note": "hi"}
    assert await problem("pass", {"bundle": extra, "expected_gen": 1}) == (400, "invalid-bundle")
    weak = {**gen2, "ops": 1}
    assert await problem("pass", {"bundle": weak, "expected_gen": 1}) == (400, "invalid-bundle")
    resalted = _bundle_at(account, "pass", 2, salt=random_bytes(16))
    assert await problem("pass", {"bundle": resalted, "expected_gen": 1}) == (
        400,
        "bundle-params-changed",
    )
    assert await problem("pass", {"bundle": gen2}) == (400, "malformed")
    assert await problem("pass", {"bundle": gen2, "expected_gen": "1"}) == (400, "malformed")
    assert await problem("pass", {"bundle": gen2, "expected_gen": 1, "x": 1}) == (400, "malformed")
    loose = json.dumps({"expected_gen": 1, "bundle": gen2}, indent=1).encode()
    assert await problem("pass", None, raw=loose) == (400, "non-canonical")
    assert await problem("other", {"bundle": gen2, "expected_gen": 1}) == (404, "no-bundle")
    resp = await client.put("/api/v1/me/bundles/pass", data=cj({"bundle": gen2, "expected_gen": 1}))
    assert resp.status == 401
    # nothing changed
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(token))
    assert (await resp.json())["bundle"] == account.pass_bundle
    assert b64e(account.salt) == account.pass_bundle["salt"]
