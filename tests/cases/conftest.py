"""Fixtures of the case tests (the world itself is in ``cases/world.py``)."""

from __future__ import annotations

import pytest
from cases.world import CaseWorld, build_world
from support.onboard import (
    Client,
    FakeClock,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
)


@pytest.fixture
async def case_world(app_client: Client, clock: FakeClock) -> CaseWorld:
    return await build_world(app_client, clock)
