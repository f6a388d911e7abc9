"""Nothing passphrase-derived, no token, no bundle plaintext or ciphertext, no unknown login
name and no client address reaches the database or the logs.

A whole session's worth of traffic runs first (real Argon2id, login, refresh, bundle reads
and writes, a passphrase change, failed logins, logout); then every table row — and for
SQLite the raw database and WAL files — and every captured log record are searched for
canary values in raw, b64 and text form.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.accounts import (
    Client,
    FakeClock,
    attempt,
    bearer,
    challenge,
    derive_for,
    make_account,
    proof,
    seed,
)

from postbox.crypto.bundle import (
    DERIVED_BYTES,
    encryption_keys,
    identity_keys,
    keys_from_output,
    normalize_passphrase,
    rewrap_bundle,
    seal_bundle,
    with_gen,
)
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.primitives import random_bytes
from postbox.crypto.recovery import format_recovery_key
from postbox.mailbox.appkeys import DB, SETTINGS
from postbox.mailbox.db.schema import metadata

OLD = "Kanarienvogel-Zollhof-31-Lebkuchen"
NEW = "Zweiter Kanarienvogel am Dutzendteich 88"
GHOST = "kanarienvogel.ghost@example.org"


def _forms(value: bytes | str) -> list[bytes]:
    """The ways a secret could show up: raw, b64, hex, and its text."""
    if isinstance(value, str):
        return [value.encode("utf-8")]
    return [value, b64e(value).encode(), value.hex().encode()]


async def _table_values(client: Client) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    async with client.app[DB].read() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                found.extend((table.name, v) for v in row if v is not None)
    return found


def _hits(haystack: bytes, canaries: dict[str, list[bytes]]) -> list[str]:
    return [name for name, forms in canaries.items() if any(f in haystack for f in forms)]


async def test_no_secrets_in_database_or_logs(
    client: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await seed(client.app, make_account("anna@example.org", passphrase=OLD))
    canaries: dict[str, bytes | str] = {
        "passphrase": OLD,
        "new passphrase": NEW,
        "nfkc passphrase": normalize_passphrase(OLD).decode(),
        "kek": account.keys.kek,
        "auth seed": account.keys.auth_seed,
        "auth pk": account.keys.auth_pk,
        "recovery key": account.recovery_key,
        "recovery key text": format_recovery_key(account.recovery_key),
        "recovery kek": account.recovery.kek,
        "recovery seed": account.recovery.auth_seed,
        "recovery pk": account.recovery.auth_pk,
        "bundle plaintext": cj(account.private_keys),
        "pass bundle ct": b64d(account.pass_bundle["ct"]),
        "recovery bundle ct": b64d(account.recovery_bundle["ct"]),
    }
    for key in identity_keys(account.private_keys):
        canaries[f"identity seed {key.kid}"] = key.seed
    for box in encryption_keys(account.private_keys):
        canaries[f"encryption sk {box.kid}"] = box.sk

    # --- a session's worth of traffic ---------------------------------------------------------
    answer = await challenge(client, account.login)
    canaries["challenge"] = b64d(answer["challenge"])
    keys = derive_for(OLD, answer)
    resp = await attempt(client, account.login, keys, challenge_b64=answer["challenge"])
    assert resp.status == 200
    first = await resp.json()
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = await resp.json()
    token = second["access_token"]
    for name, body in (("first", first), ("second", second)):
        canaries[f"{name} access token"] = body["access_token"]
        canaries[f"{name} refresh token"] = b64d(body["refresh_token"])
        canaries[f"{name} refresh token text"] = body["refresh_token"]
    for kind in ("pass", "recovery"):
        resp = await client.get(f"/api/v1/me/bundles/{kind}", headers=bearer(token))
        assert resp.status == 200
    rec2 = seal_bundle(
        with_gen(account.private_keys, 2), account.recovery.kek, account.id, kind="recovery"
    )
    canaries["recovery bundle 2 ct"] = b64d(rec2["ct"])
    canaries["bundle 2 plaintext"] = cj(with_gen(account.private_keys, 2))
    resp = await client.put(
        "/api/v1/me/bundles/recovery",
        data=cj({"bundle": rec2, "expected_gen": 1}),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert resp.status == 200
    new_bundle, _, new_keys = rewrap_bundle(account.pass_bundle, keys.kek, account.id, NEW)
    canaries.update(
        {
            "new kek": new_keys.kek,
            "new auth seed": new_keys.auth_seed,
            "new auth pk": new_keys.auth_pk,
            "new pass bundle ct": b64d(new_bundle["ct"]),
        }
    )
    ch = (await challenge(client, account.login))["challenge"]
    resp = await client.post(
        "/api/v1/me/passphrase",
        data=cj(
            {
                "challenge": ch,
                "signature": proof(client, keys.auth_seed, ch, account.login, "pass"),
                "method": "pass",
                "signer_pk": b64e(keys.auth_pk),
                "auth_pk": b64e(new_keys.auth_pk),
                "bundle": new_bundle,
                "expected_gen": 1,
            }
        ),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    stranger = keys_from_output(random_bytes(DERIVED_BYTES))
    assert (await attempt(client, GHOST, stranger)).status == 401
    assert (await attempt(client, account.login, stranger)).status == 401
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.status == 204

    # --- the search -------------------------------------------------------------------------
    forms = {name: _forms(value) for name, value in canaries.items()}
    # not secrets, but the database keeps only keyed hashes of them
    in_db = {**forms, "unknown login name": _forms(GHOST), "client address": _forms("127.0.0.1")}
    for table, value in await _table_values(client):
        if isinstance(value, bytes | bytearray | memoryview):
            blob = bytes(value)
        else:
            blob = str(value).encode("utf-8")
        assert _hits(blob, in_db) == [], table
    settings = client.app[SETTINGS]
    if settings.is_sqlite:
        path = Path(settings.database_url.split(":///", 1)[1])
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        assert files
        for file in files:
            assert _hits(file.read_bytes(), in_db) == [], file.name
    records = caplog.records
    assert any(r.name == "postbox.auth" for r in records)  # logins, failures, the change
    assert _hits(_log_text(records), forms) == []
    # Database drivers log query parameters at DEBUG, and a login name is one (it is how the
    # account is found): keep driver debug logging off in production (docs/operations.md).
    ours = [r for r in records if not r.name.startswith(DRIVER_LOGGERS)]
    assert _hits(_log_text(ours), {"unknown login name": in_db["unknown login name"]}) == []


DRIVER_LOGGERS = ("aiosqlite", "sqlalchemy", "asyncpg")


def _log_text(records: list[logging.LogRecord]) -> bytes:
    lines = [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records]
    return "\n".join(lines).encode("utf-8", "backslashreplace")
