"""Fixtures of the send-path tests (the world itself is in ``messages/world.py``)."""

from __future__ import annotations

import pytest
from messages.world import MsgWorld, build_world
from support.onboard import (
    Client,
    FakeClock,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
)


@pytest.fixture
async def msg_world(app_client: Client, clock: FakeClock) -> MsgWorld:
    return await build_world(app_client, clock)
