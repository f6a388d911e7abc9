"""Fixtures of the blobs tests: the settings (small parts, a small quota) and the world."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port
from blobs.world import EXPIRY_S, PART, QUOTA, BlobWorld
from pytest_aiohttp import AiohttpClient
from support.onboard import FakeClock, add_citizen, add_staff, create_team, init_team, setup_org

from postbox.mailbox.app import create_app
from postbox.mailbox.settings import Settings


@pytest.fixture
def port() -> int:
    return unused_port()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, port: int) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        db=db_url,
        port=port,
        public_origin=f"http://127.0.0.1:{port}",
        max_part_bytes=PART,
        quota_bytes=QUOTA,
        upload_expiry_seconds=EXPIRY_S,
        # tests move the clock by hours: sessions outlive that
        access_token_seconds=7 * 24 * 3600,
    ).validate()


@pytest.fixture
async def bw(
    aiohttp_client: AiohttpClient, settings: Settings, port: int, tmp_path: Path
) -> BlobWorld:
    clock = FakeClock()
    app = create_app(settings, clock=clock)
    client = await aiohttp_client(app, server_kwargs={"host": "127.0.0.1", "port": port})
    now = clock()
    setup = await setup_org(client, now)
    caseworker = await add_staff(client, setup, "caseworker", now)
    team = await create_team(client, setup)
    await init_team(client, setup, team, caseworker, now)
    owner = await add_citizen(client, caseworker, now)
    other = await add_citizen(client, caseworker, now)
    return BlobWorld(client, clock, settings, setup, owner, other, caseworker, team, tmp_path)
