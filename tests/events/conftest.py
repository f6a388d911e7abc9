"""Live-event tests: the real app on loopback with a controllable clock, a short
authentication deadline, and a few real accounts (both databases)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from pytest_aiohttp import AiohttpClient
from support.onboard import Client, FakeClock, Person, add_citizen, add_staff, setup_org

from postbox.mailbox.app import create_app
from postbox.mailbox.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app_client(aiohttp_client: AiohttpClient, settings: Settings, clock: FakeClock) -> Client:
    """The whole server; a socket must authenticate within one second."""
    changed = dataclasses.replace(settings, ws_auth_seconds=1).validate()
    return await aiohttp_client(create_app(changed, clock=clock))


@dataclass
class People:
    admin: Person
    caseworker: Person
    citizen: Person
    citizen2: Person


@pytest.fixture
async def people(app_client: Client, clock: FakeClock) -> People:
    """An org admin, a caseworker and two citizens, each logged in (``.token``)."""
    setup = await setup_org(app_client, clock())
    caseworker = await add_staff(app_client, setup, "caseworker", clock())
    citizen = await add_citizen(app_client, caseworker, clock())
    citizen2 = await add_citizen(app_client, caseworker, clock())
    return People(setup.admin, caseworker, citizen, citizen2)
