"""Passphrase change (fresh login proof, one transaction, other sessions revoked) and
recovery login followed by a new passphrase."""

from __future__ import annotations

from typing import Any

from support.accounts import (
    Account,
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
    DERIVED_BYTES,
    Bundle,
    DerivedKeys,
    keys_from_output,
    open_bundle,
    rewrap_bundle,
    seal_bundle,
    with_gen,
)
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.login import Method
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import AUDIT, DB

OLD = "Kirschblüte-Rathaus-7-Fähre-Quittung"
NEW = "Ein neuer Morgen über der Pegnitz 2026!"
MINUTE = 60_000


async def _change(
    client: Client,
    token: str,
    account: Account,
    *,
    signer: DerivedKeys,
    new_pk: bytes,
    bundle: Bundle | dict[str, Any],
    expected_gen: int,
    method: Method = "pass",
    challenge_for: str | None = None,
    challenge_b64: str | None = None,
) -> Any:
    if challenge_b64 is None:
        challenge_b64 = (await challenge(client, challenge_for or account.login))["challenge"]
    body = {
        "challenge": challenge_b64,
        "signature": proof(client, signer.auth_seed, challenge_b64, account.login, method),
        "method": method,
        "signer_pk": b64e(signer.auth_pk),
        "auth_pk": b64e(new_pk),
        "bundle": dict(bundle),
        "expected_gen": expected_gen,
    }
    return await client.post(
        "/api/v1/me/passphrase",
        data=cj(body),
        headers={**bearer(token), "Content-Type": "application/json"},
    )


async def _me(client: Client, token: str) -> int:
    return (await client.get("/api/v1/me", headers=bearer(token))).status


def _fast_pass_bundle(account: Account, gen: int) -> tuple[dict[str, Any], DerivedKeys]:
    keys = keys_from_output(random_bytes(DERIVED_BYTES))
    bundle = seal_bundle(
        with_gen(account.private_keys, gen),
        keys.kek,
        account.id,
        kind="pass",
        salt=random_bytes(16),
        ops=3,
        mem=64 * 1024 * 1024,
    )
    return dict(bundle), keys


async def test_change_passphrase_with_real_argon2id(client: Client, clock: FakeClock) -> None:
    account = await seed(client.app, make_account("anna@example.org", passphrase=OLD))
    here = await login(client, account)
    elsewhere = await login(client, account)
    token = here["access_token"]
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(token))
    current = (await resp.json())["bundle"]
    new_bundle, _, new_keys = rewrap_bundle(current, account.keys.kek, account.id, NEW)
    assert new_bundle["gen"] == 2
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=new_keys.auth_pk,
        bundle=new_bundle,
        expected_gen=1,
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"gen": 2, "revoked_sessions": 1}
    assert await _me(client, token) == 200
    assert await _me(client, elsewhere["access_token"]) == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}
    )
    assert refreshed.status == 401

    # the old passphrase no longer works; the new one does, from the new salt
    resp = await attempt(client, account.login, account.keys)
    assert resp.status == 401
    answer = await challenge(client, account.login)
    assert answer["salt"] == new_bundle["salt"]
    keys = derive_for(NEW, answer)
    assert keys.auth_pk == new_keys.auth_pk
    clock.advance(MINUTE)  # past the delay the failure above started
    resp = await attempt(client, account.login, keys, challenge_b64=answer["challenge"])
    assert resp.status == 200


async def test_new_passphrase_logs_in(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    token = (await login(client, account))["access_token"]
    bundle, keys = _fast_pass_bundle(account, 2)
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=bundle,
        expected_gen=1,
    )
    assert resp.status == 200
    failed = await attempt(client, account.login, account.keys)
    assert failed.status == 401
    clock.advance(MINUTE)
    resp = await attempt(client, account.login, keys)
    assert resp.status == 200
    fresh = (await resp.json())["access_token"]
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(fresh))
    served = (await resp.json())["bundle"]
    assert open_bundle(served, keys.kek, account.id)["gen"] == 2
    async with client.app[DB].read() as conn:
        entries = await client.app[AUDIT].entries(conn)
    changed = [e for e in entries if e.action == "passphrase-changed"]
    assert len(changed) == 1
    assert changed[0].details["method"] == "pass"
    assert changed[0].details["gen"] == 2


async def test_refused_passphrase_changes(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    other = await new_account(client, "ben@example.org")
    token = (await login(client, account))["access_token"]
    bundle, keys = _fast_pass_bundle(account, 2)

    async def code(resp: Any) -> tuple[int, str]:
        return resp.status, (await resp.json())["type"].rsplit(":", 1)[-1]

    stranger = keys_from_output(random_bytes(DERIVED_BYTES))
    resp = await _change(
        client, token, account, signer=stranger, new_pk=keys.auth_pk, bundle=bundle, expected_gen=1
    )
    assert await code(resp) == (403, "reauth-failed")
    # a failed proof counts towards the account's delay, like a failed login
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=bundle,
        expected_gen=1,
    )
    assert await code(resp) == (429, "login-delayed")
    clock.advance(MINUTE)
    for kw in (
        {"challenge_for": "ben@example.org"},  # a challenge issued for another name
        {"challenge_b64": b64e(random_bytes(32))},  # a challenge never issued
        {"signer": other.keys},  # another account's valid key
        {"signer": account.recovery},  # the recovery key under method pass
    ):
        args: dict[str, Any] = {"signer": account.keys, **kw}
        resp = await _change(
            client, token, account, new_pk=keys.auth_pk, bundle=bundle, expected_gen=1, **args
        )
        assert await code(resp) == (403, "reauth-failed"), kw
        clock.advance(MINUTE)
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=bundle,
        expected_gen=2,
    )
    assert await code(resp) == (400, "invalid-bundle")  # gen must be expected + 1
    stale, _ = _fast_pass_bundle(account, 3)
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=stale,
        expected_gen=2,
    )
    assert await code(resp) == (409, "gen-conflict")
    assert (await resp.json())["gen"] == 1
    recovery = dict(account.recovery_bundle)
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=recovery,
        expected_gen=0,
    )
    assert await code(resp) == (400, "invalid-bundle")
    resp = await _change(
        client, token, account, signer=account.keys, new_pk=bytes(32), bundle=bundle, expected_gen=1
    )
    assert await code(resp) == (400, "invalid-auth-pk")
    # a used challenge cannot be replayed
    ch = (await challenge(client, account.login))["challenge"]
    resp = await _change(
        client,
        token,
        account,
        signer=account.keys,
        new_pk=keys.auth_pk,
        bundle=bundle,
        expected_gen=1,
        challenge_b64=ch,
    )
    assert resp.status == 200
    again, keys3 = _fast_pass_bundle(account, 3)
    resp = await _change(
        client,
        token,
        account,
        signer=keys,
        new_pk=keys3.auth_pk,
        bundle=again,
        expected_gen=2,
        challenge_b64=ch,
    )
    assert await code(resp) == (403, "reauth-failed")
    resp = await client.post("/api/v1/me/passphrase", json={})
    assert resp.status == 401


async def test_recovery_login_then_new_passphrase(client: Client, clock: FakeClock) -> None:
    account = await new_account(client, "anna@example.org")
    # the pass bundle moved on (gen 2) after the recovery bundle was made
    token = (await login(client, account))["access_token"]
    moved = seal_bundle(
        with_gen(account.private_keys, 2),
        account.keys.kek,
        account.id,
        kind="pass",
        salt=account.salt,
        ops=account.ops,
        mem=account.mem,
    )
    resp = await client.put(
        "/api/v1/me/bundles/pass",
        data=cj({"bundle": moved, "expected_gen": 1}),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert resp.status == 200

    # the passphrase is forgotten; the printed recovery key logs in
    body = await login(client, account, method="recovery")
    rtoken = body["access_token"]
    resp = await client.get("/api/v1/me/bundles/recovery", headers=bearer(rtoken))
    rbundle = (await resp.json())["bundle"]
    assert open_bundle(rbundle, account.recovery.kek, account.id) == account.private_keys
    resp = await client.get("/api/v1/me/bundles/pass", headers=bearer(rtoken))
    pass_gen = (await resp.json())["bundle"]["gen"]
    assert pass_gen == 2
    new_bundle, _, new_keys = rewrap_bundle(
        rbundle,
        account.recovery.kek,
        account.id,
        NEW,
        gen=pass_gen + 1,
        salt=b64d(account.pass_bundle["salt"]),  # any salt; a fresh one in real clients
        ops=2,  # the cheapest accepted parameters keep this test fast
    )
    resp = await _change(
        client,
        rtoken,
        account,
        signer=account.recovery,
        method="recovery",
        new_pk=new_keys.auth_pk,
        bundle=new_bundle,
        expected_gen=pass_gen,
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"gen": 3, "revoked_sessions": 1}
    assert await _me(client, token) == 401
    assert await _me(client, rtoken) == 200
    resp = await attempt(client, account.login, new_keys)
    assert resp.status == 200
    # the parameters differ from the defaults, so the client is asked to re-key
    assert (await resp.json())["rekey"] == {"ops": 3, "mem": 64 * 1024 * 1024}
