"""Real flows, every answer checked against the document (both databases).

The fuzzer rarely gets past signature checks, so here every operation is driven to its
success answer by real clients with real keys (the onboarding of ``support.onboard``, key
publication, bundles, passphrase change, sessions) and through a set of refusals with
extra members (``retry_after``, ``gen``, ``seq``) and special statuses (410, 429). A
recorder on the app keeps what the server answered (after every middleware); each
exchange is then validated with schemathesis' own response checks — the status is
documented for the operation, the content type and headers match, the body matches its
schema (problem bodies: documented codes only).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.onboard import (
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
    operator_invite,
    send,
    team_key,
    wrap,
)

from postbox.crypto import activation, certs
from postbox.crypto.bundle import MIB, build_private_keys, seal_bundle
from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.login import sign_login
from postbox.crypto.primitives import box_keypair, random_bytes, sign_keypair
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
#: operations whose success answer the flows below must reach
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in document()["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete")
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
    body: bytes

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def code(self) -> str | None:
        if self.status < 400:
            return None
        return str(json.loads(self.body)["type"]).removeprefix(PROBLEM_BASE)


class Recorder:
    """``app.on_response_prepare``: keeps every answer with the route it came from."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    async def __call__(self, request: web.Request, response: web.StreamResponse) -> None:
        route = request.match_info.route
        resource = route.resource if request.match_info.http_exception is None else None
        body = response.body if isinstance(response, web.Response) else b""
        self.exchanges.append(
            Exchange(
                method=request.method,
                template=None if resource is None else resource.canonical,
                path=request.path,
                query=request.query_string,
                params=dict(request.match_info),
                status=response.status,
                headers=dict(response.headers),
                body=body if isinstance(body, bytes) else b"",
            )
        )


def validate(exchange: Exchange) -> None:
    """The answer as the document describes it (raises schemathesis' FailureGroup)."""
    assert exchange.template is not None
    operation = SCHEMA[exchange.template][exchange.method]
    url = f"http://127.0.0.1{exchange.path}" + (f"?{exchange.query}" if exchange.query else "")
    response = schemathesis.Response(
        status_code=exchange.status,
        headers={name.lower(): [value] for name, value in exchange.headers.items()},
        content=exchange.body,
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

    # --- logout
    await f.ok("POST", "/api/v1/auth/logout", who=citizen)
    await f.refused("GET", "/api/v1/me", None, 401, "session-ended", who=citizen)
    await f.refused("GET", "/api/v1/me", None, 401, "unauthorized")


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


@pytest.fixture
async def recorded(aiohttp_client: AiohttpClient, settings: Settings) -> tuple[Recorder, Recorder]:
    """The flows on one server, the rate limit on a second (with a limit of 1)."""
    clock = FakeClock()
    flows, limits = Recorder(), Recorder()
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
    statuses = {e.status for e in exchanges}
    assert {200, 201, 204, 400, 401, 403, 404, 409, 410, 429} <= statuses


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
