"""A live Postbox for synchronous HTTP clients (schemathesis uses ``requests``).

:class:`LiveServer` runs the whole server (``create_app``) on a loopback port in a thread of
its own with its own event loop, so a synchronous test can call it while it serves.
Coroutines that need the app (the onboarding helpers of ``support.onboard``) run on that
loop through :meth:`LiveServer.run`.

:func:`onboard_world` sets up what the fuzzer can name: an organisation with its root and
admin, a team with a first member, a citizen, a pending staff identity and an invitation,
all through the real HTTP API. Then the mailbox: a published procedure, the citizen's
attachment (uploaded in parts), its application to the team (opening a case, with the
attachment), the team's decision in that case, and an unfinished upload.

The mail helpers (:func:`seal`, :func:`post_message`, :func:`put_part`, :func:`procedure`)
seal and sign with the crypto core exactly as a client does; ``test_conformance`` uses
them too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.onboard import (
    NOW,
    OrgSetup,
    Person,
    add_citizen,
    add_staff,
    create_team,
    init_team,
    invite,
    login,
    new_id,
    send,
    setup_org,
)

from postbox.crypto import certs
from postbox.crypto.attachment_stream import EncryptedBlob, encrypt_bytes
from postbox.crypto.encoding import b64e
from postbox.crypto.envelope import Kind, Sealed, seal_message
from postbox.crypto.primitives import random_bytes
from postbox.crypto.procedures import Procedure, form_digest, sign_procedure
from postbox.crypto.receipts import SthRef
from postbox.mailbox.app import create_app
from postbox.mailbox.blobs.storage import part_checksum
from postbox.mailbox.clock import Clock
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]
T = TypeVar("T")

#: seconds any one step on the server's loop may take
STEP_TIMEOUT = 120.0


class LiveServer:
    """The server on ``127.0.0.1:<free port>``, served from a background thread."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="postbox-live", daemon=True
        )
        self._client: Client | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=STEP_TIMEOUT)
            self._loop.close()

    async def _start(self) -> None:
        app = create_app(self.settings, clock=self._clock)
        self._client = TestClient(TestServer(app, host="127.0.0.1"))
        await self._client.start_server()

    async def _stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    # --- use ---------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(STEP_TIMEOUT)

    @property
    def client(self) -> Client:
        """An aiohttp test client of the server (use it on the server's loop only)."""
        assert self._client is not None, "start the server first"
        return self._client

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return str(self.client.make_url("")).rstrip("/")


@dataclass
class World:
    """Real objects on the live server, and the people who may touch them."""

    setup: OrgSetup  # the organisation, its root and its (certified) admin
    caseworker: Person  # certified, first member of ``team``
    pending: Person  # a caseworker whose identity waits for org certification
    citizen: Person  # invited by the caseworker
    leaver: Person  # a citizen whose sessions the fuzzer may end
    team: str
    invitation: str  # an unused invitation made by the caseworker
    procedure: str  # published by the admin, version 1
    blob: str  # the citizen's attachment of ``application``
    upload: str  # the citizen's unfinished upload (only part 0 received)
    case: str  # opened by ``application``
    application: str  # citizen → team (from the citizen's mailbox)
    decision: str  # team → citizen in ``case`` (signed by the caseworker)
    keys: dict[str, certs.Cert]  # mailbox → its current encryption certificate

    @property
    def org(self) -> str:
        return self.setup.org

    @property
    def admin(self) -> Person:
        return self.setup.admin


async def onboard_world(client: Client) -> World:
    """The operator's, the admin's and the caseworker's first steps, then some mail, over
    HTTP (the server's clock stands at :data:`NOW`)."""
    setup = await setup_org(client, NOW)
    caseworker = await add_staff(client, setup, "caseworker", NOW)
    pending = await add_staff(client, setup, "caseworker", NOW, certified=False)
    team = await create_team(client, setup)
    key = await init_team(client, setup, team, caseworker, NOW)
    citizen = await add_citizen(client, caseworker, NOW)
    leaver = await add_citizen(client, caseworker, NOW)
    invitation, _ = await invite(client, caseworker, "citizen", NOW)
    # the mailbox: a procedure, an attachment, an application opening a case, a decision
    procedure_id = new_id()
    proc = procedure(setup.org, procedure_id)
    status, body = await send(
        client,
        "POST",
        f"/api/v1/orgs/{setup.org}/procedures",
        sign_procedure(proc, setup.admin.sign_seed),
        who=setup.admin,
    )
    assert status == 201, body
    attachment = encrypt_bytes(random_bytes(3000))
    blob = await upload(client, citizen, attachment.blob)
    keys = {team: key.cert, citizen.id: citizen.enc_cert}
    sth = await tree_head(client)
    case = new_id()
    application = seal(
        citizen,
        [team],
        keys,
        now=NOW,
        sth=sth,
        kind="application",
        case=case,
        form=form_for(proc, {"name": "Ada Lovelace"}),
        attached=[(blob, attachment, 3000)],
    )
    status, body = await post_message(
        client, citizen, application.body, f"?procedure={procedure_id}&version=1"
    )
    assert status == 201, body
    decision = seal(
        caseworker, [citizen.id], keys, now=NOW, sth=sth, from_=team, kind="decision", case=case
    )
    status, body = await post_message(client, caseworker, decision.body)
    assert status == 201, body
    unfinished = encrypt_bytes(random_bytes(PART_BYTES + 100)).blob
    status, state = await send(
        client, "POST", "/api/v1/uploads", {"blob": new_id(), "size": len(unfinished)}, who=citizen
    )
    assert status == 201, state
    status, body = await put_part(
        client, citizen, state["blob"], 0, unfinished[: state["part_bytes"]]
    )
    assert status == 201, body
    return World(
        setup,
        caseworker,
        pending,
        citizen,
        leaver,
        team,
        invitation,
        procedure=procedure_id,
        blob=blob,
        upload=state["blob"],
        case=case,
        application=application.wire["header"]["id"],
        decision=decision.wire["header"]["id"],
        keys=keys,
    )


async def fresh_session(client: Client, person: Person) -> tuple[str, str]:
    """A new session for ``person`` (challenge and login): (access token, session id)."""
    token = await login(client, person)
    status, body = await send(client, "GET", "/api/v1/sessions", who=person)
    assert status == 200, body
    current = [s["id"] for s in body["sessions"] if s["current"]]
    return token, current[0]


# --- mail helpers --------------------------------------------------------------------------------
#: the part size of the live servers' uploads (``Settings.max_part_bytes``), small enough that
#: small test blobs have several parts
PART_BYTES = 1024


def procedure(org: str, procedure_id: str, version: int = 1) -> Procedure:
    """A small procedure definition (one form field, one optional document)."""
    return {
        "v": 1,
        "org": org,
        "id": procedure_id,
        "version": version,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 200}},
            "required": ["name"],
        },
        "labels": {"de": {"title": "Aufenthaltstitel verlängern"}},
        "documents": [{"name": "passport", "required": False, "max_size": 10_000_000}],
    }


def form_for(proc: Procedure, data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``form`` member of an application's content for ``proc``."""
    return {
        "procedure": proc["id"],
        "version": proc["version"],
        "digest": b64e(form_digest(proc)),
        "data": dict(data),
    }


async def tree_head(client: Client) -> SthRef:
    """The ``{"size","root"}`` of the newest tree head (what a client verified)."""
    status, served = await send(client, "GET", "/api/v1/transparency/sth")
    assert status == 200, served
    return {"size": served["sth"]["size"], "root": served["sth"]["root"]}


def seal(
    sender: Person,
    to: Sequence[str],
    recipients: Mapping[str, certs.Cert],
    *,
    now: int,
    sth: SthRef,
    from_: str | None = None,
    kind: Kind = "message",
    case: str | None = None,
    message_id: str | None = None,
    form: Mapping[str, Any] | None = None,
    attached: Sequence[tuple[str, EncryptedBlob, int]] = (),
    body: str = "Sehr geehrte Damen und Herren, …",
) -> Sealed:
    """An envelope ``sender`` signs, sealed to ``recipients`` (mailbox → encryption cert of
    every mailbox of ``to`` and ``from``); ``attached``: (blob id, blob, file size)."""
    return seal_message(
        content={
            "subject": "Antrag auf Verlängerung",
            "body": body,
            "format": "text",
            "form": None if form is None else dict(form),
            "attachments": [
                {
                    "blob": blob,
                    "name": "pass.pdf",
                    "type": "application/pdf",
                    "size": file_size,
                    "key": b64e(encrypted.key),
                }
                for blob, encrypted, file_size in attached
            ],
            "in_reply_to": None,
            "sth": {"size": sth["size"], "root": sth["root"]},
        },
        message_id=message_id or new_id(),
        kind=kind,
        from_=from_ or sender.id,
        signer=sender.id,
        signer_seed=sender.sign_seed,
        to=list(to),
        recipients=recipients,
        thread=None,
        case=case,
        created=now,
        blobs=[
            {"id": blob, "size": len(encrypted.blob), "hash": b64e(encrypted.hash)}
            for blob, encrypted, _ in attached
        ],
    )


async def post_message(
    client: Client, sender: Person, body: bytes, query: str = ""
) -> tuple[int, Any]:
    """``POST /api/v1/messages`` with the canonical envelope bytes."""
    headers = {"Content-Type": "application/json", **sender.headers}
    resp = await client.post("/api/v1/messages" + query, data=body, headers=headers)
    return resp.status, await resp.json()


async def put_part(
    client: Client,
    who: Person,
    blob: str,
    n: int,
    data: bytes,
    *,
    checksum: bytes | None = None,
) -> tuple[int, Any]:
    """``PUT /api/v1/uploads/{blob}/parts/{n}`` (octet-stream, ``X-Checksum``)."""
    headers = {
        **who.headers,
        "Content-Type": "application/octet-stream",
        "X-Checksum": b64e(part_checksum(data) if checksum is None else checksum),
    }
    resp = await client.put(f"/api/v1/uploads/{blob}/parts/{n}", data=data, headers=headers)
    return resp.status, await resp.json()


async def upload(client: Client, who: Person, data: bytes) -> str:
    """A whole upload of ``data``, part by part, completed; returns the blob id."""
    status, state = await send(
        client, "POST", "/api/v1/uploads", {"blob": new_id(), "size": len(data)}, who=who
    )
    assert status == 201, state
    blob, size = state["blob"], state["part_bytes"]
    for n, start in enumerate(range(0, len(data), size)):
        status, body = await put_part(client, who, blob, n, data[start : start + size])
        assert status == 201, body
    status, body = await send(client, "POST", f"/api/v1/uploads/{blob}/complete", who=who)
    assert status == 200, body
    return str(blob)
