"""Canary scans: prove that no secret or plaintext reached the database, files or logs.

A flow collects its canaries (passphrases, activation codes, recovery keys, subjects and
bodies later), then :func:`assert_nothing_in_clear` searches every byte the server keeps:
the SQLite files (database, WAL) or every PostgreSQL table, every file under the data
folder, and the captured log records. Each canary is searched as text and, where it is a
Crockford code, also as its decoded bytes in raw and b64 form.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from postbox.crypto import crockford
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import CryptoError
from postbox.mailbox.db import schema
from postbox.mailbox.settings import Settings

SECRET_FIELDS = ("code", "recovery_key")


def _code_bytes(text: str) -> bytes | None:
    """The 20 bytes of an activation code or recovery key (32 Crockford symbols, a
    recovery key followed by its 4-symbol checksum), or None for anything else."""
    try:
        symbols = crockford.normalize(text)
    except CryptoError:
        return None
    if len(symbols) not in (32, 36):
        return None
    return crockford.decode(symbols[:32])


def _is_code(text: str) -> bool:
    return _code_bytes(text) is not None


def secrets_in(value: Any) -> list[str]:
    """Every activation code and recovery key (``code``/``recovery_key``) in a JSON value."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k in SECRET_FIELDS and isinstance(v, str) and _is_code(v):
                found.append(v)
            else:
                found.extend(secrets_in(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(secrets_in(v))
    return found


def _forms(canary: str) -> list[bytes]:
    forms = [canary.encode("utf-8")]
    raw = _code_bytes(canary)
    if raw is None:
        return forms
    return [*forms, raw, b64e(raw).encode("ascii"), crockford.encode(raw).encode("ascii")]


async def _postgres_dump(url: str) -> bytes:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        parts = []
        for table in schema.metadata.sorted_tables:
            for row in await conn.fetch(f'SELECT * FROM "{table.name}"'):
                for value in row.values():
                    parts.append(value if isinstance(value, bytes) else str(value).encode())
        return b"\n".join(parts)
    finally:
        await conn.close()


async def stored_bytes(settings: Settings) -> dict[str, bytes]:
    """Everything the server keeps: database content and every file of the data folder."""
    haystacks: dict[str, bytes] = {}
    if settings.is_sqlite:
        database = Path(settings.database_url.split(":///", 1)[1])
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = database.with_name(database.name + suffix)
            if path.is_file():
                haystacks[str(path)] = path.read_bytes()
    else:
        haystacks["postgresql"] = await _postgres_dump(settings.database_url)
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_bytes()
    assert haystacks, "nothing to scan"
    return haystacks


def assert_nothing_in_clear(
    canaries: Iterable[str],
    haystacks: Mapping[str, bytes],
    records: Iterable[logging.LogRecord] = (),
) -> None:
    logs = "\n".join(r.getMessage() + repr(r.args) for r in records).encode("utf-8")
    all_haystacks = {**haystacks, "logs": logs}
    leaks = [
        f"{canary[:6]}… found in {where}"
        for canary in canaries
        for form in _forms(canary)
        for where, data in all_haystacks.items()
        if len(form) >= 8 and form in data
    ]
    assert not leaks, leaks
