"""Fixtures of the notification tests: a real SMTP server on loopback (aiosmtpd, in its own
thread), the whole app with a controllable clock and its SMTP settings pointing there, and
the send-path world (two onboarded organisations, ``tests/messages/world.py``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from messages.world import MsgWorld, build_world
from support.onboard import (
    Client,
    FakeClock,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
)

from postbox.mailbox.settings import Settings


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler: records every accepted mail. ``refuse`` answers DATA with an
    error instead (e.g. ``451 4.3.0 try again later``); ``refuse_rcpt`` answers RCPT for an
    address with one (e.g. ``550 5.1.1 mailbox unavailable``); while ``drop`` is positive,
    DATA ends with the connection closed and no reply (a server dying mid-DATA)."""

    mails: list[Received] = field(default_factory=list)
    refuse: str | None = None
    refused: int = 0
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    drop: int = 0
    dropped: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            self.refused += 1
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.drop > 0:
            self.drop -= 1
            self.dropped += 1
            server.transport.close()
            return "421 4.3.0 closing"  # never reaches the client
        if self.refuse is not None:
            self.refused += 1
            return self.refuse
        self.mails.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 2.0.0 accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    recorder: SmtpRecorder


def _free_port() -> int:
    # Controller(port=0) does not work (its start() connects to the configured port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, recorder)
    finally:
        controller.stop()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: SmtpServer) -> Settings:
    """The tests drive the worker themselves (``run_once``), so the app runs none."""
    return Settings(
        data_dir=tmp_path / "var",
        db=db_url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_security="none",
        mail_from="postbox@postbox.example",
        notification_worker=False,
        notify_max_attempts=3,
        notify_backoff_seconds=60,
        notify_backoff_cap_seconds=600,
        notify_claim_seconds=300,
    ).validate()


@pytest.fixture
async def msg_world(app_client: Client, clock: FakeClock) -> MsgWorld:
    return await build_world(app_client, clock)
