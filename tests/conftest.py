"""Fixtures shared by every test folder: databases on both backends, settings, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from support.db import postgres_database
from support.mailworld import MailWorld, open_mail_world
from support.world import World, make_world

from postbox.mailbox.app import create_app
from postbox.mailbox.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each storage test runs twice: on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'postbox.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # no notification worker: tests that read outbox rows must not race it (the
    # notification tests drive their worker themselves, tests/notifications)
    return Settings(data_dir=tmp_path / "var", db=db_url, notification_worker=False).validate()


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings
) -> TestClient[web.Request, web.Application]:
    """The whole server (the same factory as ``postbox serve``) on loopback."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture(scope="session")
def world() -> World:
    """Accounts, a team and an organisation with real keys, from fixed seeds."""
    return make_world()


@pytest.fixture
async def mail_world(db_url: str, tmp_path: Path) -> AsyncIterator[MailWorld]:
    """A live server with an onboarded org, team, two caseworkers and two citizens, all
    logged in (see ``tests/support/mailworld.py``); on both databases."""
    async with open_mail_world(db_url, tmp_path) as world:
        yield world
