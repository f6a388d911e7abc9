"""Fixtures of the inbox tests (the world itself is in ``inbox/world.py``)."""

from __future__ import annotations

import pytest
from inbox.world import InboxWorld, build_world
from support.onboard import (
    Client,
    FakeClock,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
)


@pytest.fixture
async def inbox_world(app_client: Client, clock: FakeClock) -> InboxWorld:
    return await build_world(app_client, clock)
