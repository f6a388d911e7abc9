"""Live-server fixtures of the delivery tests: a mail world on both databases with a clock
the test moves and a server whose answers a test can tamper with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from delivery.dbworld import FakeClock
from support.client import Tampering
from support.mailworld import MailWorld, open_mail_world


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tampering() -> Tampering:
    return Tampering()


@pytest.fixture
async def w(
    db_url: str, tmp_path: Path, clock: FakeClock, tampering: Tampering
) -> AsyncIterator[MailWorld]:
    async with open_mail_world(db_url, tmp_path, clock=clock, tampering=tampering) as world:
        clock.freeze()
        # from now on everybody lives in the test's time (tree heads, tokens, receipts)
        for person in world.people:
            person.client.session.clock = clock
        yield world
