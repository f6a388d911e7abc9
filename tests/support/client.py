"""Helpers for the client and desk tests: a live server on a known loopback port, the
operator's first steps, running desk commands in-process, and a tampering proxy.

The server must run on a port known *before* it starts: login signatures bind the origin,
and the server accepts only its configured public origin, so ``public_origin`` is set to the
URL the clients use.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port

from postbox.desk.cli import amain
from postbox.mailbox.app import create_app
from postbox.mailbox.clock import Clock, system_clock
from postbox.mailbox.settings import Settings

PASSPHRASE = "Kanal-Fähre-Quitte-7-Zimt-Orbit"


@dataclass
class Live:
    url: str
    app: web.Application
    settings: Settings


@asynccontextmanager
async def live_server(
    db_url: str,
    data_dir: Path,
    *,
    clock: Clock = system_clock,
    tampering: Tampering | None = None,
) -> AsyncIterator[Live]:
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=data_dir, db=db_url, port=port, public_origin=url).validate()
    app = create_app(settings, clock=clock)
    if tampering is not None:
        # innermost: it rewrites what the route handlers answered, like a compromised server
        app.middlewares.append(tampering.middleware())
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Live(url, app, settings)
    finally:
        await server.close()


@dataclass
class DeskResult:
    code: int
    out: str
    err: str

    @property
    def data(self) -> dict[str, Any]:
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert lines, f"no output (exit {self.code}): {self.err}"
        value = json.loads(lines[-1])
        assert isinstance(value, dict)
        return value


def _pipe(lines: Sequence[str]) -> int | None:
    if not lines:
        return None
    r, w = os.pipe()
    os.write(w, "".join(line + "\n" for line in lines).encode("utf-8"))
    os.close(w)
    return r


async def desk(
    *args: str,
    passphrases: Sequence[str] = (),
    root_passphrases: Sequence[str] = (),
) -> DeskResult:
    """Run ``postbox-desk --json ARGS`` in this event loop, passphrases through pipes."""
    argv = [*args, "--json"]
    fds = []
    fd = _pipe(passphrases)
    if fd is not None:
        argv += ["--passphrase-fd", str(fd)]
        fds.append(fd)
    rfd = _pipe(root_passphrases)
    if rfd is not None:
        argv += ["--root-passphrase-fd", str(rfd)]
        fds.append(rfd)
    out, err = io.StringIO(), io.StringIO()
    try:
        code = await amain(argv, stdout=out, stderr=err)
    finally:
        for f in fds:
            os.close(f)
    return DeskResult(code, out.getvalue(), err.getvalue())


Tamper = Callable[[str, Any], Any]


@dataclass
class Tampering:
    """Set ``fn`` to make the live server rewrite its JSON answers: ``fn(path, body)``
    returns the body to send instead (a server "made to" serve something else)."""

    fn: Tamper | None = None

    def middleware(self) -> Any:
        @web.middleware
        async def tamper(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            fn = self.fn
            if fn is None or not isinstance(response, web.Response) or response.status != 200:
                return response
            if response.content_type != "application/json" or response.body is None:
                return response
            assert isinstance(response.body, bytes)
            body = fn(request.path, json.loads(response.body))
            return web.json_response(body, headers={"X-Tampered": "1"})

        return tamper


async def operator_invites_admin(live: Live, name: str = "Stadt Test") -> tuple[str, bytes]:
    """The operator's first steps through the server's own services: an organisation and
    an admin invitation. Returns (org id, activation code)."""
    from postbox.crypto import activation
    from postbox.crypto.encoding import b64e
    from postbox.crypto.primitives import random_bytes
    from postbox.mailbox.appkeys import CLOCK, INVITATIONS, ORGS
    from postbox.mailbox.orgs.service import NewOrg

    app = live.app
    org = await app[ORGS].create(NewOrg.of({"de": name}, name, False))
    code = activation.generate_code()
    await app[INVITATIONS].create_by_operator(
        invitation_id=b64e(random_bytes(16)),
        org_id=org.id,
        authoriser=activation.act_auth(code),
        expires=app[CLOCK]() + 7 * 24 * 3600 * 1000,
    )
    return org.id, code
