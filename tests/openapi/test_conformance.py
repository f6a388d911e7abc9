"""Real flows, every answer checked against the document (both databases).

The fuzzer rarely gets past signature checks, so here every operation is driven to its
success answer by real clients with real keys (the onboarding of ``support.onboard``, key
publication, bundles, passphrase change, sessions; then the mailbox: procedures, uploads
in parts, downloads with ranges, sealed and signed envelopes opening and deciding a case,
listing, fetching, moving and deleting, delivery records, signed read receipts, the live
events socket) and through a set of refusals with extra members (``retry_after``,
``gen``, ``seq``, ``mailbox``/``kid``) and special statuses (410, 416, 426, 429). A
recorder on the app keeps what the server answered (after every middleware; streamed
answers with the bytes they streamed); each exchange is then validated with schemathesis'
own response checks — the status is documented for the operation, the content type and
headers match, the body matches its schema (problem bodies: documented codes only).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from openapi.live import (
    PART_BYTES,
    form_for,
    onboard_world,
    post_message,
    procedure,
    put_part,
    seal,
    tree_head,
)
from pytest_aiohttp import AiohttpClient
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.onboard import (
    NOW,
    YEAR,
    Client,
    FakeClock,
    OrgSetup,
    Person,
    account_fields,
    activate,
    add_staff,
    certify,
    create_org,
    create_team,
    init_team,
    invite,
    login,
    make_person,
    membership,
    new_id,
    operator_invite,
    send,
    team_key,
    wrap,
)

from postbox.crypto import activation, certs
from postbox.crypto.attachment_stream import encrypt_bytes
from postbox.crypto.bundle import MIB, build_private_keys, seal_bundle
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.login import sign_login
from postbox.crypto.primitives import box_keypair, random_bytes, sign_keypair
from postbox.crypto.procedures import sign_procedure
from postbox.crypto.receipts import sign_read
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import SETTINGS
from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.http import API_SECURITY_HEADERS
from postbox.mailbox.openapi.document import document
from postbox.mailbox.settings import Settings

SCHEMA = schemathesis.openapi.from_dict(document())
RESPONSE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: operations whose success answer the flows below must reach (all of them)
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in document()["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
)


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One answer of the server, as it went out."""

    method: str
    template: str | None  # the route's path template; None: no route matched
    path: str
    query: str
    params: dict[str, str]
    status: int
    headers: dict[str, str]
    #: a streamed answer's bytes arrive after the recorder saw it: a bytearray that grows
    body: bytes | bytearray

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def code(self) -> str | None:
        if self.status < 400:
            return None
        return str(json.loads(self.body)["type"]).removeprefix(PROBLEM_BASE)


class Recorder:
    """``app.on_response_prepare``: keeps every answer with the route it came from.

    A streamed answer (a blob download) is prepared before its body is written: the
    recorder keeps what goes through its ``write`` (a WebSocket's frames are not a body);
    bytes the server hands to ``sendfile`` bypass ``write``, so :meth:`Flow.fetch` adds what
    the client received (:meth:`received`).
    """

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    async def __call__(self, request: web.Request, response: web.StreamResponse) -> None:
        route = request.match_info.route
        resource = route.resource if request.match_info.http_exception is None else None
        body: bytes | bytearray = b""
        if isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
        elif not isinstance(response, web.WebSocketResponse):
            body = _tap(response)
        self.exchanges.append(
            Exchange(
                method=request.method,
                template=None if resource is None else resource.canonical,
                path=request.path,
                query=request.query_string,
                params=dict(request.match_info),
                status=response.status,
                headers=dict(response.headers),
                body=body,
            )
        )

    def received(self, path: str, status: int, data: bytes) -> None:
        """The bytes a client got for the last streamed answer to ``path`` whose body the
        server sent without ``write`` (``sendfile``)."""
        for exchange in reversed(self.exchanges):
            if exchange.path == path and exchange.status == status:
                if isinstance(exchange.body, bytearray) and not exchange.body:
                    exchange.body.extend(data)
                return


def _tap(response: web.StreamResponse) -> bytearray:
    """The bytes ``response`` streams, as they are written."""
    written = bytearray()
    write = response.write

    async def tapped(data: bytes | bytearray | memoryview) -> None:
        written.extend(data)
        await write(data)

    response.write = tapped  # type: ignore[method-assign]
    return written


def validate(exchange: Exchange) -> None:
    """The answer as the document describes it (raises schemathesis' FailureGroup)."""
    assert exchange.template is not None
    operation = SCHEMA[exchange.template][exchange.method]
    url = f"http://127.0.0.1{exchange.path}" + (f"?{exchange.query}" if exchange.query else "")
    response = schemathesis.Response(
        status_code=exchange.status,
        headers={name.lower(): [value] for name, value in exchange.headers.items()},
        content=bytes(exchange.body),
        request=requests.Request(exchange.method, url).prepare(),
        elapsed=0.0,
        verify=True,
    )
    case = operation.Case(path_parameters=exchange.params)
    case.validate_response(response, checks=RESPONSE_CHECKS)


# --- the flows ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Flow:
    client: Client
    clock: FakeClock

    def now(self) -> int:
        return self.clock()

    async def call(
        self, method: str, path: str, body: Any = None, *, who: Person | None = None
    ) -> tuple[int, Any]:
        return await send(self.client, method, path, body, who=who)

    async def ok(
        self, method: str, path: str, body: Any = None, *, who: Person | None = None
    ) -> Any:
        status, answer = await self.call(method, path, body, who=who)
        assert status < 300, (method, path, status, answer)
        return answer

    async def refused(
        self,
        method: str,
        path: str,
        body: Any,
        status: int,
        code: str,
        *,
        who: Person | None = None,
    ) -> dict[str, Any]:
        got, problem = await self.call(method, path, body, who=who)
        assert (got, problem["type"]) == (status, PROBLEM_BASE + code), problem
        assert isinstance(problem, dict)
        return problem

    async def fetch(
        self, path: str, *, who: Person, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """A GET whose answer is not JSON (a blob): (status, the bytes)."""
        resp = await self.client.get(path, headers={**who.headers, **(headers or {})})
        data = await resp.read()
        for hook in self.client.app.on_response_prepare:
            if isinstance(hook, Recorder):
                hook.received(path.split("?", 1)[0], resp.status, data)
        return resp.status, data


def refusal(answer: tuple[int, Any], status: int, code: str) -> dict[str, Any]:
    """An answer (of a helper that does not go through :meth:`Flow.call`) is this problem."""
    got, problem = answer
    assert (got, problem["type"]) == (status, PROBLEM_BASE + code), problem
    assert isinstance(problem, dict)
    return problem


async def run_flows(f: Flow) -> None:
    now = f.now()
    # --- public basics
    for path in ("/healthz", "/api/v1/openapi.json", "/api/v1/server"):
        await f.ok("GET", path)
    await f.refused("GET", "/api/v1/transparency/sth?x=1", None, 400, "unknown-parameter")

    # --- the operator creates an org; its admin looks the code up and activates
    org = await create_org(f.client, self_registration=True)
    code = await operator_invite(f.client, org, now)
    lookup = {"authoriser": b64e(activation.act_auth(code))}
    await f.ok("POST", "/api/v1/activation/lookup", lookup)
    admin = make_person("admin", org, now=now)
    await activate(f.client, admin, code)
    await f.refused("POST", "/api/v1/activation/lookup", lookup, 410, "invitation-used")
    await login(f.client, admin)
    await f.ok("GET", f"/api/v1/orgs/{org}", who=admin)
    root_seed = random_bytes(32)
    root = certs.make_org_root(org=org, name="Stadt Nürnberg", root_seed=root_seed, created=now)
    await f.ok("POST", f"/api/v1/orgs/{org}/root", {"org_root": root}, who=admin)
    await f.refused(
        "POST", f"/api/v1/orgs/{org}/root", {"org_root": root}, 409, "org-root-exists", who=admin
    )
    pending = await f.ok("GET", f"/api/v1/orgs/{org}/pending", who=admin)
    assert [p["cert"]["subject"] for p in pending["pending"]] == [admin.id]
    setup = OrgSetup(org, root_seed, root, admin)
    await certify(f.client, setup, admin)

    # --- a caseworker: invited, activated, verified by the inviter, certified
    iid, cw_code = await invite(f.client, admin, "caseworker", now)
    caseworker = make_person("caseworker", org, now=now)
    verified = f"/api/v1/invitations/{iid}/verified"
    await f.refused("POST", verified, None, 409, "not-activated", who=admin)
    await activate(f.client, caseworker, cw_code)
    await f.ok("GET", f"/api/v1/invitations/{iid}", who=admin)
    await f.ok("POST", verified, who=admin)
    await login(f.client, caseworker)
    await certify(f.client, setup, caseworker)
    second = await add_staff(f.client, setup, "caseworker", now)

    # --- a team: created, listed, key set by its first member, a member added and removed
    team = await create_team(f.client, setup)
    await f.ok("GET", f"/api/v1/orgs/{org}/teams", who=caseworker)
    key = await init_team(f.client, setup, team, caseworker, now)
    await f.ok("GET", f"/api/v1/teams/{team}", who=caseworker)
    await f.ok("GET", f"/api/v1/teams/{team}/wraps", who=caseworker)
    f.clock.advance(1)
    add = {
        "member": second.id,
        "membership": membership(team, second, admin, f.now()),
        "wrap": wrap(key, second, caseworker),
    }
    await f.ok("POST", f"/api/v1/teams/{team}/members", add, who=caseworker)
    await f.refused(
        "POST", f"/api/v1/teams/{team}/members", add, 409, "already-member", who=caseworker
    )
    f.clock.advance(1)
    remove = {"membership": membership(team, second, admin, f.now())}
    await f.ok("DELETE", f"/api/v1/teams/{team}/members/{second.id}", remove, who=caseworker)
    await f.refused("GET", f"/api/v1/teams/{team}/wraps", None, 403, "not-a-member", who=second)
    f.clock.advance(1)
    new = team_key(team, org, admin, f.now())
    rotate = {"cert": new.signed, "wraps": [wrap(new, caseworker, caseworker)], "membership": None}
    await f.ok("POST", f"/api/v1/teams/{team}/key", rotate, who=caseworker)

    # --- a citizen, invited by the caseworker; a self-registered one
    _, cit_code = await invite(f.client, caseworker, "citizen", now)
    citizen = make_person("citizen", org, now=now)
    await activate(f.client, citizen, cit_code)
    registrant = make_person("citizen", org, now=now)
    await f.ok("POST", "/api/v1/registration", {**account_fields(registrant), "org": org})

    # --- login by hand, to keep the refresh token
    origin = f.client.app[SETTINGS].origin
    answer = await f.ok("POST", "/api/v1/auth/challenge", {"login": citizen.login})
    login_body = {
        "login": citizen.login,
        "challenge": answer["challenge"],
        "auth_pk": b64e(sign_keypair(citizen.auth_seed)[0]),
        "signature": b64e(
            sign_login(
                citizen.auth_seed, b64d(answer["challenge"], 32), origin, citizen.login, "pass"
            )
        ),
        "method": "pass",
    }
    grant = await f.ok("POST", "/api/v1/auth/login", login_body)
    await f.refused("POST", "/api/v1/auth/login", login_body, 401, "login-failed")
    f.clock.advance(60_000)  # past the delay that failure started
    citizen.token = grant["access_token"]
    refresh = {"refresh_token": grant["refresh_token"]}
    refreshed = await f.ok("POST", "/api/v1/auth/refresh", refresh)
    citizen.token = refreshed["access_token"]
    await f.refused("POST", "/api/v1/auth/refresh", refresh, 401, "refresh-reused")
    await login(f.client, citizen)  # the reuse ended that session: a new one

    # --- me, bundles, sessions
    await f.ok("GET", "/api/v1/me", who=citizen)
    await f.ok("GET", "/api/v1/me/bundles/pass", who=citizen)
    await f.refused("GET", "/api/v1/me/bundles/other", None, 404, "no-bundle", who=citizen)
    keys2 = build_private_keys(
        gen=2, identity=[citizen.sign_seed], encrypt=[(citizen.enc_sk, None)]
    )
    recovery2 = seal_bundle(keys2, random_bytes(32), citizen.id, kind="recovery")
    update = {"bundle": recovery2, "expected_gen": 1}
    await f.ok("PUT", "/api/v1/me/bundles/recovery", update, who=citizen)
    conflict = await f.refused(
        "PUT", "/api/v1/me/bundles/recovery", update, 409, "gen-conflict", who=citizen
    )
    assert conflict["gen"] == 2
    other_token = citizen.token
    await login(f.client, citizen)
    sessions = await f.ok("GET", "/api/v1/sessions", who=citizen)
    old = [s["id"] for s in sessions["sessions"] if not s["current"]]
    await f.ok("DELETE", f"/api/v1/sessions/{old[0]}", who=citizen)
    citizen_old = dataclasses.replace(citizen, token=other_token)
    await f.refused("GET", "/api/v1/me", None, 401, "session-ended", who=citizen_old)

    # --- passphrase change: a fresh proof, a new pass bundle at gen 2
    answer = await f.ok("POST", "/api/v1/auth/challenge", {"login": citizen.login})
    new_auth = random_bytes(32)
    pass2 = seal_bundle(
        keys2, random_bytes(32), citizen.id, kind="pass", salt=random_bytes(16), ops=2, mem=64 * MIB
    )
    change = {
        "challenge": answer["challenge"],
        "signature": b64e(
            sign_login(
                citizen.auth_seed, b64d(answer["challenge"], 32), origin, citizen.login, "pass"
            )
        ),
        "method": "pass",
        "signer_pk": b64e(sign_keypair(citizen.auth_seed)[0]),
        "auth_pk": b64e(sign_keypair(new_auth)[0]),
        "bundle": pass2,
        "expected_gen": 1,
    }
    await f.ok("POST", "/api/v1/me/passphrase", change, who=citizen)
    await f.refused("POST", "/api/v1/me/passphrase", change, 403, "reauth-failed", who=citizen)
    citizen.auth_seed = new_auth

    # --- keys: publish a new encryption key (conditional append), read the log
    chain = await f.ok("GET", f"/api/v1/keys/{citizen.id}")
    enc = certs.sign_cert(
        certs.make_cert(
            subject=citizen.id,
            kind="citizen",
            org=None,
            use="encrypt",
            pk=box_keypair(random_bytes(32))[0],
            created=f.now(),
            expires=f.now() + YEAR,
        ),
        citizen.sign_seed,
    )
    wrong = await f.refused(
        "POST",
        "/api/v1/keys",
        {"type": "key", "body": enc, "seq": 7, "prev": b64e(bytes(32))},
        409,
        "wrong-seq",
        who=citizen,
    )
    assert wrong["seq"] == len(chain["events"])
    appended = await f.ok("POST", "/api/v1/keys", {"type": "key", "body": enc}, who=citizen)
    size = (await f.ok("GET", "/api/v1/transparency/sth"))["sth"]["size"]
    assert appended["index"] < size
    await f.ok("GET", f"/api/v1/transparency/inclusion?index={appended['index']}&size={size}")
    await f.ok("GET", f"/api/v1/transparency/consistency?first=1&second={size}")
    await f.ok("GET", f"/api/v1/transparency/leaves?start=0&end={size}")
    await f.refused("GET", "/api/v1/keys/nobody", None, 400, "invalid-subject")

    # --- the mailbox (with the rotated team key and the citizen's new encryption key)
    keys = {team: new.cert, citizen.id: enc["cert"]}
    stale = {team: new.cert, citizen.id: citizen.enc_cert}
    await mail_flows(f, Cast(org, admin, caseworker, team, citizen, keys, stale))

    # --- live events: a WebSocket (authenticated in its first frame), or 426
    ws = await f.client.ws_connect("/api/v1/events")
    await ws.send_json({"type": "auth", "token": citizen.token, "cursor": None})
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    await ws.close()
    await f.refused("GET", "/api/v1/events", None, 426, "websocket-required")

    # --- logout
    await f.ok("POST", "/api/v1/auth/logout", who=citizen)
    await f.refused("GET", "/api/v1/me", None, 401, "session-ended", who=citizen)
    await f.refused("GET", "/api/v1/me", None, 401, "unauthorized")


@dataclasses.dataclass
class Cast:
    """Who the mailbox flows run with (all logged in), and the keys senders seal to."""

    org: str
    admin: Person  # certified
    caseworker: Person  # certified, the team's only member
    team: str
    citizen: Person
    keys: dict[str, certs.Cert]  # mailbox → its current encryption certificate
    stale: dict[str, certs.Cert]  # the same with the citizen's superseded key


async def mail_flows(f: Flow, c: Cast) -> None:
    """Every mailbox route to its success answer, and refusals with their documented codes."""
    org, admin, cw, team, citizen = c.org, c.admin, c.caseworker, c.team, c.citizen

    # --- the org admin: a procedure, the reference pattern, legal settings, retention
    procedure_id = new_id()
    proc = procedure(org, procedure_id)
    signed = sign_procedure(proc, admin.sign_seed)
    procedures = f"/api/v1/orgs/{org}/procedures"
    await f.ok("POST", procedures, signed, who=admin)
    newest = await f.refused("POST", procedures, signed, 409, "procedure-version-exists", who=admin)
    assert newest["version"] == 1
    await f.ok("GET", procedures)
    await f.ok("GET", f"{procedures}/{procedure_id}/1")
    await f.refused("GET", f"{procedures}/{procedure_id}/2", None, 404, "procedure-not-found")
    pattern = f"/api/v1/orgs/{org}/case-pattern"
    await f.ok("GET", pattern, who=admin)
    await f.ok("PUT", pattern, {"pattern": "ABH-{year}-{seq:6}"}, who=admin)
    await f.refused("PUT", pattern, {"pattern": "ABH-{year}"}, 400, "invalid-pattern", who=admin)
    await f.refused("GET", pattern, None, 403, "admin-only", who=cw)
    legal = f"/api/v1/orgs/{org}/legal-settings"
    await f.ok("GET", legal, who=cw)
    rules = {
        "time_zone": "Europe/Berlin",
        "country": "DE",
        "subdivision": "BY",
        "decision_rule": "de-vwvfg-41-2a",
    }
    await f.ok("PUT", legal, rules, who=admin)
    bad_zone = {**rules, "time_zone": "Mars/Olympus_Mons"}
    await f.refused("PUT", legal, bad_zone, 400, "invalid-time-zone", who=admin)
    await f.ok("GET", "/api/v1/legal-rules")
    retention = f"/api/v1/orgs/{org}/retention"
    await f.ok("GET", retention, who=admin)
    rule = {"delete_after_days": None, "trash_days": 30}
    await f.ok("PUT", retention, rule, who=admin)
    await f.refused("PUT", retention, rule, 403, "admin-only", who=cw)

    # --- the citizen uploads an attachment in parts (any order, resumable), completes it
    file_size = 2 * PART_BYTES
    attachment = encrypt_bytes(random_bytes(file_size))
    data = attachment.blob
    blob = new_id()
    announce = {"blob": blob, "size": len(data)}
    created = await f.ok("POST", "/api/v1/uploads", announce, who=citizen)
    assert created["part_bytes"] == PART_BYTES
    status, again = await f.call("POST", "/api/v1/uploads", announce, who=citizen)
    assert (status, again) == (200, created)
    parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    last = len(parts) - 1
    assert last >= 2 and len(parts[last]) < PART_BYTES
    assert (await put_part(f.client, citizen, blob, last, parts[last]))[0] == 201
    assert (await put_part(f.client, citizen, blob, last, parts[last]))[0] == 200
    other = random_bytes(len(parts[last]))
    refusal(await put_part(f.client, citizen, blob, last, other), 409, "part-conflict")
    wrong = await put_part(f.client, citizen, blob, 0, parts[0], checksum=bytes(32))
    refusal(wrong, 400, "checksum-mismatch")
    state = await f.ok("GET", f"/api/v1/uploads/{blob}", who=citizen)
    assert (state["state"], state["received"]) == ("uploading", [last])
    complete = f"/api/v1/uploads/{blob}/complete"
    await f.refused("POST", complete, None, 409, "parts-missing", who=citizen)
    for n in range(last):
        assert (await put_part(f.client, citizen, blob, n, parts[n]))[0] == 201
    done = await f.ok("POST", complete, who=citizen)
    assert done["hash"] == b64e(attachment.hash)
    await f.ok("GET", "/api/v1/me/storage", who=citizen)
    await f.refused(
        "POST",
        "/api/v1/uploads",
        {"blob": new_id(), "size": 1},
        400,
        "invalid-blob-size",
        who=citizen,
    )
    await f.refused(
        "GET", f"/api/v1/uploads/{new_id()}", None, 404, "upload-not-found", who=citizen
    )
    # an upload the citizen gives up
    given_up = new_id()
    await f.ok("POST", "/api/v1/uploads", {**announce, "blob": given_up}, who=citizen)
    dropped = f"/api/v1/uploads/{given_up}"
    await f.ok("DELETE", dropped, who=citizen)
    await f.refused("DELETE", dropped, None, 404, "upload-not-found", who=citizen)
    # the owner reads it back; nobody else may, yet
    assert await f.fetch(f"/api/v1/blobs/{blob}", who=citizen) == (200, data)
    await f.refused("GET", f"/api/v1/blobs/{blob}", None, 404, "blob-not-found", who=cw)

    # --- the citizen applies (opening a case, with the attachment) and writes a note
    sth = await tree_head(f.client)
    case = new_id()
    application = seal(
        citizen,
        [team],
        c.keys,
        now=f.now(),
        sth=sth,
        kind="application",
        case=case,
        form=form_for(proc, {"name": "Ada Lovelace"}),
        attached=[(blob, attachment, file_size)],
    )
    query = f"?procedure={procedure_id}&version=1"
    status, receipt = await post_message(f.client, citizen, application.body, query)
    assert status == 201, receipt
    resent = await post_message(f.client, citizen, application.body, query)
    assert resent == (200, receipt), "a safe resend answers the stored receipt"
    note = seal(citizen, [team], c.keys, now=f.now(), sth=sth)
    status, answer = await post_message(f.client, citizen, note.body)
    assert status == 201, answer
    note_id = note.wire["header"]["id"]
    reused = seal(citizen, [team], c.keys, now=f.now(), sth=sth, message_id=note_id, body="?")
    refusal(await post_message(f.client, citizen, reused.body), 409, "message-id-reused")
    old_key = seal(citizen, [team], c.stale, now=f.now(), sth=sth)
    current = refusal(await post_message(f.client, citizen, old_key.body), 409, "stale-key")
    assert (current["mailbox"], current["kid"]) == (citizen.id, c.keys[citizen.id]["kid"])

    # --- the team's mailbox: list, page, fetch, mark; the attachment is now readable
    boxes = await f.ok("GET", "/api/v1/mailboxes", who=cw)
    assert team in [b["mailbox"] for b in boxes["mailboxes"]]
    listing = f"/api/v1/mailboxes/{team}/messages"
    page = await f.ok("GET", f"{listing}?limit=1", who=cw)
    assert page["next"] is not None
    await f.ok("GET", f"{listing}?limit=1&before={page['next']}", who=cw)
    await f.refused("GET", f"{listing}?before=nonsense", None, 400, "invalid-cursor", who=cw)
    await f.refused(
        "GET", f"/api/v1/mailboxes/{citizen.id}/messages", None, 404, "mailbox-not-found", who=cw
    )
    entry = f"{listing}/{citizen.id}/{application.wire['header']['id']}"
    fetched = await f.ok("GET", entry, who=cw)
    assert fetched["key"]["mailbox"] == team
    await f.ok("PATCH", entry, {"read": True, "flagged": True}, who=cw)
    await f.refused("PATCH", entry, {"folder": "sent"}, 409, "folder-not-allowed", who=cw)
    ranged = await f.fetch(f"/api/v1/blobs/{blob}", who=cw, headers={"Range": "bytes=0-99"})
    assert ranged == (206, data[:100])
    beyond = {"Range": f"bytes={len(data)}-"}
    assert (await f.fetch(f"/api/v1/blobs/{blob}", who=cw, headers=beyond))[0] == 416

    # --- the case: seen by both sides, moved by the team (server metadata)
    await f.ok("GET", "/api/v1/cases", who=citizen)
    await f.ok("GET", f"/api/v1/cases?mailbox={team}&status=submitted", who=cw)
    await f.refused("GET", "/api/v1/cases?status=lost", None, 400, "invalid-filter", who=citizen)
    opened = await f.ok("GET", f"/api/v1/cases/{case}", who=citizen)
    assert opened["reference"].startswith("ABH-")
    moves = f"/api/v1/cases/{case}/status"
    await f.ok("POST", moves, {"status": "in_review"}, who=cw)
    await f.refused(
        "POST", moves, {"status": "info_requested"}, 403, "status-by-team-only", who=citizen
    )
    await f.refused("GET", f"/api/v1/cases/{new_id()}", None, 404, "case-not-found", who=cw)

    # --- the team's decision: delivered, retrieved, read (signed receipt, countersigned)
    decision = seal(
        cw, [citizen.id], c.keys, now=f.now(), sth=sth, from_=team, kind="decision", case=case
    )
    status, answer = await post_message(f.client, cw, decision.body)
    assert status == 201, answer
    decision_id = decision.wire["header"]["id"]
    inbox = f"/api/v1/mailboxes/{citizen.id}/messages"
    await f.ok("GET", f"{inbox}?folder=inbox&unread=true", who=citizen)
    await f.ok("GET", f"{inbox}/{team}/{decision_id}", who=citizen)
    record = await f.ok("GET", f"/api/v1/messages/{team}/{decision_id}/delivery", who=cw)
    assert [e["delivery"]["event"] for e in record["events"]] == ["available", "retrieved"]
    assert record["clock"] is not None
    f.clock.advance(1)
    read = sign_read(
        message=decision_id,
        digest=decision.digest,
        mailbox=citizen.id,
        reader=citizen.id,
        sth=sth,
        read=f.now(),
        reader_seed=citizen.sign_seed,
    )
    reads = f"/api/v1/messages/{team}/{decision_id}/reads"
    status, pair = await f.call("POST", reads, read, who=citizen)
    assert status == 201, pair
    assert await f.call("POST", reads, read, who=citizen) == (200, pair)
    mismatch = sign_read(**{**_read_fields(read, citizen), "digest": random_bytes(64)})
    await f.refused("POST", reads, mismatch, 400, "receipt-mismatch", who=citizen)
    assert (await f.ok("GET", reads, who=cw))["reads"] == [pair]
    await f.ok("GET", f"/api/v1/mailboxes/{team}/overdue", who=cw)
    await f.refused(
        "GET", f"/api/v1/mailboxes/{team}/overdue?limit=0", None, 400, "invalid-parameter", who=cw
    )
    await f.refused(
        "GET",
        f"/api/v1/messages/{team}/{new_id()}/delivery",
        None,
        404,
        "message-not-found",
        who=cw,
    )
    decided = await f.ok("GET", f"/api/v1/cases/{case}", who=cw)
    assert decided["status"] == "decided"
    await f.ok("POST", moves, {"status": "closed"}, who=cw)

    # --- the citizen deletes its note from its sent folder
    sent = f"{inbox}/{citizen.id}/{note_id}"
    await f.ok("DELETE", sent, who=citizen)
    await f.refused("DELETE", sent, None, 404, "message-not-found", who=citizen)

    # --- team cards: one, a batch, the org's teams; the org's citizens_may_write flag
    card = await f.ok("GET", f"/api/v1/mailboxes/{team}/card", who=citizen)
    assert (card["team"], card["org"]) == (team, org)
    await f.refused(
        "GET", f"/api/v1/mailboxes/{citizen.id}/card", None, 404, "mailbox-not-found", who=cw
    )
    batch = await f.ok("GET", f"/api/v1/mailboxes/cards?ids={team},{cw.id},{team}", who=citizen)
    assert ([c["team"] for c in batch["cards"]], batch["unknown"]) == ([team], [cw.id])
    await f.refused("GET", "/api/v1/mailboxes/cards", None, 400, "missing-parameter", who=cw)
    await f.refused(
        "GET", "/api/v1/mailboxes/cards?ids=nonsense", None, 400, "invalid-query", who=cw
    )
    org_cards = f"/api/v1/orgs/{org}/cards"
    assert [c["team"] for c in (await f.ok("GET", org_cards, who=citizen))["cards"]] == [team]
    closed = await f.ok("PATCH", f"/api/v1/orgs/{org}", {"citizens_may_write": False}, who=admin)
    assert closed["citizens_may_write"] is False
    await f.refused("GET", org_cards, None, 404, "org-not-found", who=citizen)
    await f.refused(
        "PATCH", f"/api/v1/orgs/{org}", {"citizens_may_write": True}, 403, "admin-only", who=cw
    )
    await f.refused("PATCH", f"/api/v1/orgs/{org}", {}, 400, "malformed", who=admin)
    await f.ok("PATCH", f"/api/v1/orgs/{org}", {"citizens_may_write": True}, who=admin)


def _read_fields(signed: Any, reader: Person) -> dict[str, Any]:
    """The arguments of :func:`sign_read` that made ``signed``."""
    body = signed["read"]
    return {
        "message": body["message"],
        "digest": b64d(body["digest"], 64),
        "mailbox": body["mailbox"],
        "reader": body["reader"],
        "sth": body["sth"],
        "read": body["read"],
        "reader_seed": reader.sign_seed,
    }


async def rate_limited(f: Flow) -> None:
    """Past the per-address limit (1 a minute here): 429 with Retry-After."""
    for _ in range(3):
        status, answer = await f.call("POST", "/api/v1/auth/challenge", {"login": "x@example.org"})
        if status == 429:
            assert answer["type"] == PROBLEM_BASE + "too-many-attempts"
            assert answer["retry_after"] >= 1
            return
        assert status == 200, answer
    raise AssertionError("no 429 past the limit")


#: what the flows recorded, per database backend: the exchanges are plain data, so the tests
#: below share one run of the flows per backend (a test run alone runs them itself)
_RECORDED: dict[str, tuple[Recorder, Recorder]] = {}


@pytest.fixture
async def recorded(aiohttp_client: AiohttpClient, settings: Settings) -> tuple[Recorder, Recorder]:
    """The flows on one server, the rate limit on a second (with a limit of 1)."""
    backend = settings.database_url.split("+", 1)[0]
    if backend not in _RECORDED:
        _RECORDED[backend] = await _record(aiohttp_client, settings)
    return _RECORDED[backend]


async def _record(aiohttp_client: AiohttpClient, settings: Settings) -> tuple[Recorder, Recorder]:
    clock = FakeClock()
    flows, limits = Recorder(), Recorder()
    # small upload parts, so that a small attachment goes up in several
    settings = dataclasses.replace(settings, max_part_bytes=PART_BYTES).validate()
    app = create_app(settings, clock=clock)
    app.on_response_prepare.append(flows)
    await run_flows(Flow(await aiohttp_client(app), clock))
    # a second server on the same database and secrets, with a limit of one a minute
    strict = dataclasses.replace(settings, login_rate_per_minute=1).validate()
    app = create_app(strict, clock=clock)
    app.on_response_prepare.append(limits)
    await rate_limited(Flow(await aiohttp_client(app), clock))
    return flows, limits


async def test_every_answer_of_real_flows_matches_the_document(
    recorded: tuple[Recorder, Recorder],
) -> None:
    exchanges = [e for r in recorded for e in r.exchanges]
    failures: list[str] = []
    for exchange in exchanges:
        try:
            validate(exchange)
        except FailureGroup as exc:
            failures.append(f"{exchange.label} → {exchange.status}:\n{exc}")
    assert failures == [], "\n\n".join(failures)
    succeeded = {e.label for e in exchanges if e.status < 300}
    assert sorted(set(OPERATIONS) - succeeded) == [], "operations never answered with success"
    # streamed answers were validated with the bytes they streamed
    ranged = [e for e in exchanges if e.label == "GET /api/v1/blobs/{blob}" and e.status == 206]
    assert [len(e.body) for e in ranged] == [100]
    statuses = {e.status for e in exchanges}
    assert {101, 200, 201, 204, 206, 400, 401, 403, 404, 409, 410, 416, 426, 429} <= statuses


async def test_a_wrong_document_is_caught(recorded: tuple[Recorder, Recorder]) -> None:
    """The checks are not vacuous: an answer outside the document fails them."""
    flows, _ = recorded
    health = next(e for e in flows.exchanges if e.label == "GET /healthz")
    for broken in (
        dataclasses.replace(health, status=418),
        dataclasses.replace(health, body=b'{"status": "ok", "version": 1}'),
        dataclasses.replace(health, headers={**health.headers, "Content-Type": "text/plain"}),
        dataclasses.replace(
            health, headers={k: v for k, v in health.headers.items() if k != "X-Request-Id"}
        ),
    ):
        with pytest.raises(FailureGroup):
            validate(broken)
    refusal = next(e for e in flows.exchanges if e.code == "org-root-exists")
    undocumented = refusal.body.replace(b"org-root-exists", b"something-else")
    with pytest.raises(FailureGroup):
        validate(dataclasses.replace(refusal, body=undocumented))
    # binary answers: their headers and content type count too
    ranged = next(e for e in flows.exchanges if e.status == 206)
    for broken in (
        dataclasses.replace(
            ranged, headers={k: v for k, v in ranged.headers.items() if k != "Content-Range"}
        ),
        dataclasses.replace(ranged, headers={**ranged.headers, "Content-Type": "text/plain"}),
        dataclasses.replace(ranged, status=203),
    ):
        with pytest.raises(FailureGroup):
            validate(broken)


# --- case conflicts: a 409 keeps the HTTP status in `status` (the case's is `case_status`) -------
async def test_case_conflicts_match_the_document(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    recorder = Recorder()
    settings = dataclasses.replace(settings, max_part_bytes=PART_BYTES).validate()
    app = create_app(settings, clock=FakeClock())
    app.on_response_prepare.append(recorder)
    client = await aiohttp_client(app)
    w = await onboard_world(client)  # its case is decided
    moves = f"/api/v1/cases/{w.case}/status"
    for target, code in (
        ("decided", "status-unchanged"),
        ("withdrawn", "signed-envelope-required"),
        ("in_review", "transition-not-allowed"),
    ):
        status, problem = await send(client, "POST", moves, {"status": target}, who=w.caseworker)
        assert (status, problem["type"]) == (409, PROBLEM_BASE + code), problem
    sth = await tree_head(client)
    again = seal(
        w.caseworker,
        [w.citizen.id],
        w.keys,
        now=NOW,
        sth=sth,
        from_=w.team,
        kind="decision",
        case=w.case,
    )
    refusal(await post_message(client, w.caseworker, again.body), 409, "transition-not-allowed")
    failures: list[str] = []
    for exchange in recorder.exchanges:
        try:
            validate(exchange)
        except FailureGroup as exc:
            failures.append(f"{exchange.label} → {exchange.status} {exchange.body!r}:\n{exc}")
    if failures:
        raise AssertionError("\n\n".join(failures))


# --- server bugs found while writing the document (fixed; kept as regression tests) ------------
async def test_every_answer_carries_the_security_headers(
    recorded: tuple[Recorder, Recorder],
) -> None:
    for exchange in (e for r in recorded for e in r.exchanges):
        missing = sorted(set(API_SECURITY_HEADERS) - set(exchange.headers))
        assert missing == [], f"{exchange.label} → {exchange.status}"


async def test_a_body_that_does_not_decode_is_a_400(client: Client) -> None:
    resp = await client.post(
        "/api/v1/auth/challenge",
        data=b'{"login":"a"}',
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/problem+json"
