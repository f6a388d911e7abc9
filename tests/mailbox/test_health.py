"""The server core on both databases: start-up, health, problems, security headers."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import SECRETS
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import current_revision, head_revision, upgrade
from postbox.mailbox.secrets import SecretsError
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]


async def test_healthz_answers_when_ready(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Request-Id"):
        assert header in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"


async def test_unknown_routes_and_methods_are_problem_json(client: Client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["type"] == "urn:postbox:problem:not-found"
    assert body["status"] == 404
    assert body["request_id"] == resp.headers["X-Request-Id"]
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert resp.content_type == "application/problem+json"


async def test_migrations_reach_head_and_run_once(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        # two concurrent upgrades: the lock lets one migrate, the other finds head
        results = await asyncio.gather(upgrade(db), upgrade(db))
        assert sorted(results, key=str) == sorted([None, head_revision()], key=str)
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


async def test_two_servers_share_one_database_and_secrets(settings: Settings) -> None:
    first = create_app(settings)
    second = create_app(settings)
    async with TestServer(first), TestServer(second):
        assert first[SECRETS].log_pk == second[SECRETS].log_pk
        assert first[SECRETS].pepper == second[SECRETS].pepper


async def test_a_lost_secret_is_not_silently_replaced(settings: Settings) -> None:
    """Once the database holds data, a missing secret file stops the start-up: a new
    pepper or bundle key would lock every account out without a word."""
    async with TestServer(create_app(settings)):
        pass  # first start: secrets created, leaf 0 written
    (settings.secrets_dir / "pepper.key").unlink()
    with pytest.raises(SecretsError, match=r"pepper\.key is missing"):
        async with TestServer(create_app(settings)):
            pass
    assert not (settings.secrets_dir / "pepper.key").exists()
