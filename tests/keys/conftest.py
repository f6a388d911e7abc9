"""Fixtures of the key-directory and transparency-log tests: the app with a fake clock."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from support.keys import FakeClock, Sessions

from postbox.mailbox.app import create_app
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def kclient(aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock) -> Client:
    """The whole server on loopback, with a clock the test moves."""
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest.fixture
def tokens(kclient: Client) -> Sessions:
    """Real sessions (real accounts, real login) for the accounts of a test."""
    return Sessions(kclient)
