"""Auth tests run the real app with a controllable clock (challenge expiry, token lifetimes,
delays and rate-limit windows move without sleeping)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from support.accounts import Client, FakeClock, MakeClient

from postbox.mailbox.app import create_app
from postbox.mailbox.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock) -> MakeClient:
    """The whole server on loopback with the fake clock and some settings changed."""

    async def make(**changes: Any) -> Client:
        changed = dataclasses.replace(settings, **changes).validate()
        return await aiohttp_client(create_app(changed, clock=clock))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    """The ``client`` of tests/conftest.py, with the fake clock."""
    return await make_client()
