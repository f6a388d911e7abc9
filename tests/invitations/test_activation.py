"""Invitations, activation and self-registration through the real server, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.onboard import (
    DAY,
    Client,
    FakeClock,
    OrgSetup,
    Person,
    account_fields,
    activate,
    activation_body,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    certify,
    clock_fixture,  # noqa: F401 (a fixture)
    create_org,
    create_team,
    invite,
    login,
    make_person,
    new_id,
    operator_invite,
    send,
    setup_org,
    table_counts,
    used_invitations,
)

from postbox.crypto import activation, certs
from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.primitives import random_bytes, sign_keypair
from postbox.mailbox.appkeys import DB, KEYLOG


async def _staffed(client: Client, clock: FakeClock) -> tuple[OrgSetup, Person]:
    setup = await setup_org(client, clock())
    return setup, await add_staff(client, setup, "caseworker", clock())


async def _chain_types(client: Client, subject: str) -> list[str]:
    async with client.app[DB].read() as conn:
        return [e["type"] for e in await client.app[KEYLOG].events(conn, subject)]


# --- happy paths ---------------------------------------------------------------------------------
async def test_citizen_invitation_lookup_activation_and_verification(
    app_client: Client, clock: FakeClock
) -> None:
    setup, cw = await _staffed(app_client, clock)
    team = await create_team(app_client, setup)
    iid, code = await invite(app_client, cw, "citizen", clock(), team=team)

    status, found = await send(
        app_client,
        "POST",
        "/api/v1/activation/lookup",
        {"authoriser": b64e(activation.act_auth(code))},
    )
    assert status == 200, found
    assert found["kind"] == "citizen"
    assert found["org"] == setup.org
    assert found["team"] == team
    assert found["org_root"] == setup.root
    assert found["org_name"] == "Stadt Nürnberg"
    assert certs.org_fingerprint(certs.verify_org_root(found["org_root"])) == (
        certs.org_fingerprint(setup.root["org_root"])
    )

    citizen = make_person("citizen", setup.org, now=clock())
    status, done = await send(
        app_client, "POST", "/api/v1/activation", activation_body(citizen, code)
    )
    assert status == 201, done
    assert done == {"account": citizen.id, "kind": "citizen", "org": setup.org}
    # a citizen's keys are in the log at once: identity, then encryption key
    assert await _chain_types(app_client, citizen.id) == ["identity", "key"]

    await login(app_client, citizen)
    status, me = await send(app_client, "GET", "/api/v1/me", who=citizen)
    assert (status, me["identity_verified"], me["org"]) == (200, False, setup.org)

    # the inviter fetches act_mac and the identity and checks the MAC with its code
    status, inv = await send(app_client, "GET", f"/api/v1/invitations/{iid}", who=cw)
    assert status == 200, inv
    assert inv["account"] == citizen.id and inv["used"] is not None
    assert inv["identity"]["cert"] == citizen.identity_cert
    activation.verify_act_mac(code, inv["identity"]["cert"], b64d(inv["act_mac"], 32))
    status, inv = await send(app_client, "POST", f"/api/v1/invitations/{iid}/verified", who=cw)
    assert status == 200 and inv["verified"] is not None
    status, me = await send(app_client, "GET", "/api/v1/me", who=citizen)
    assert me["identity_verified"] is True
    # verifying again is harmless
    status, again = await send(app_client, "POST", f"/api/v1/invitations/{iid}/verified", who=cw)
    assert status == 200 and again["verified"] == inv["verified"]


async def test_staff_identity_waits_for_org_certification(
    app_client: Client, clock: FakeClock
) -> None:
    setup = await setup_org(app_client, clock())
    iid, code = await invite(app_client, setup.admin, "connector", clock())
    connector = make_person("connector", setup.org, now=clock())
    await activate(app_client, connector, code)
    assert await _chain_types(app_client, connector.id) == []
    status, body = await send(
        app_client, "GET", f"/api/v1/orgs/{setup.org}/pending", who=setup.admin
    )
    assert status == 200
    assert [c["cert"]["subject"] for c in body["pending"]] == [connector.id]
    # the inviting admin checks the MAC over the pending identity before certifying it
    status, inv = await send(app_client, "GET", f"/api/v1/invitations/{iid}", who=setup.admin)
    assert status == 200, inv
    assert inv["identity"] == connector.identity
    activation.verify_act_mac(code, inv["identity"]["cert"], b64d(inv["act_mac"], 32))
    await login(app_client, connector)
    status, _ = await send(app_client, "GET", f"/api/v1/invitations/{iid}", who=connector)
    assert status == 404
    await certify(app_client, setup, connector)
    assert await _chain_types(app_client, connector.id) == ["identity", "key"]
    status, body = await send(
        app_client, "GET", f"/api/v1/orgs/{setup.org}/pending", who=setup.admin
    )
    assert body["pending"] == []


async def test_lookup_before_the_org_root_exists(app_client: Client, clock: FakeClock) -> None:
    org = await create_org(app_client)
    code = await operator_invite(app_client, org, clock())
    status, found = await send(
        app_client,
        "POST",
        "/api/v1/activation/lookup",
        {"authoriser": b64e(activation.act_auth(code))},
    )
    assert status == 200, found
    assert (found["kind"], found["org_root"], found["team"]) == ("admin", None, None)
    assert found["org_name"] == "Stadt Nürnberg – Ausländerbehörde"


# --- refusals: precise 4xx, nothing stored -------------------------------------------------------
async def _refused(
    client: Client, body: Any, status: int, code: str, *, raw: bytes | None = None
) -> None:
    before = await table_counts(client)
    if raw is None:
        got, problem = await send(client, "POST", "/api/v1/activation", body)
    else:
        resp = await client.post(
            "/api/v1/activation", data=raw, headers={"Content-Type": "application/json"}
        )
        got, problem = resp.status, await resp.json()
    assert (got, problem["type"]) == (status, f"urn:postbox:problem:{code}"), problem
    assert await table_counts(client) == before


async def test_reused_code_is_gone(app_client: Client, clock: FakeClock) -> None:
    _, cw = await _staffed(app_client, clock)
    _, code = await invite(app_client, cw, "citizen", clock())
    await activate(app_client, make_person("citizen", cw.org, now=clock()), code)
    again = make_person("citizen", cw.org, now=clock())
    await _refused(app_client, activation_body(again, code), 410, "invitation-used")
    status, problem = await send(
        app_client,
        "POST",
        "/api/v1/activation/lookup",
        {"authoriser": b64e(activation.act_auth(code))},
    )
    assert (status, problem["type"]) == (410, "urn:postbox:problem:invitation-used")


async def test_expired_and_unknown_codes(app_client: Client, clock: FakeClock) -> None:
    _, cw = await _staffed(app_client, clock)
    _, code = await invite(app_client, cw, "citizen", clock())
    clock.advance(DAY)  # the invitation expires exactly now
    p = make_person("citizen", cw.org, now=clock())
    await _refused(app_client, activation_body(p, code), 410, "invitation-expired")
    unknown = activation.generate_code()
    await _refused(app_client, activation_body(p, unknown), 404, "invitation-not-found")
    for authoriser in (activation.act_auth(code), activation.act_auth(unknown)):
        status, problem = await send(
            app_client, "POST", "/api/v1/activation/lookup", {"authoriser": b64e(authoriser)}
        )
        assert status in (404, 410), problem


def _resign_identity(p: Person, cert: certs.Cert, seed: bytes | None = None) -> None:
    p.identity = certs.sign_cert(cert, seed or p.sign_seed)
    enc = dict(p.enc_cert)
    enc.update(subject=cert["subject"], kind=cert["kind"], org=cert["org"])
    p.enc = certs.sign_cert(certs.check_cert(enc), seed or p.sign_seed)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("someone-elses-account", "certificate-mismatch"),
        ("wrong-kind", "certificate-mismatch"),
        ("citizen-with-org", "certificate-mismatch"),
        ("forged-identity", "invalid-identity"),
        ("encryption-by-other-key", "invalid-encryption"),
        ("identity-with-org-sig", "invalid-identity"),
        ("act-mac-wrong-size", "malformed"),
        ("unknown-member", "malformed"),
        ("bad-bundle", "invalid-bundle"),
        ("identity-from-the-future", "invalid-identity"),
    ],
)
async def test_bad_certificates_are_refused_and_nothing_is_stored(
    app_client: Client, clock: FakeClock, case: str, code: str
) -> None:
    setup, cw = await _staffed(app_client, clock)
    _, invitation = await invite(app_client, cw, "citizen", clock())
    now = clock()
    p = make_person("citizen", cw.org, now=now)
    body = activation_body(p, invitation)
    if case == "someone-elses-account":
        other = make_person("citizen", cw.org, now=now)
        body = {**activation_body(other, invitation), "account": p.id}
    elif case == "wrong-kind":
        _resign_identity(p, certs.make_cert(**_fields(p, kind="caseworker", org=cw.org)))
        body = activation_body(p, invitation)
    elif case == "citizen-with-org":
        _resign_identity(p, certs.make_cert(**_fields(p, org=cw.org)))
        body = activation_body(p, invitation)
    elif case == "forged-identity":
        forged = dict(p.identity)
        forged["sig"] = b64e(bytes(64))
        body["identity"] = forged
    elif case == "encryption-by-other-key":
        body["encryption"] = certs.sign_cert(p.enc_cert, random_bytes(32))
    elif case == "identity-with-org-sig":
        body["identity"] = certs.org_certify(p.identity, setup.root_seed)
    elif case == "act-mac-wrong-size":
        body["act_mac"] = b64e(bytes(16))
    elif case == "unknown-member":
        body["extra"] = 1
    elif case == "bad-bundle":
        body["pass_bundle"] = {**body["pass_bundle"], "ops": 1}
    elif case == "identity-from-the-future":
        _resign_identity(p, certs.make_cert(**_fields(p, created=now + DAY)))
        body = activation_body(p, invitation)
    await _refused(app_client, body, 400, code)
    # the invitation is still usable afterwards
    await activate(app_client, make_person("citizen", cw.org, now=now), invitation)


def _fields(p: Person, **changes: Any) -> dict[str, Any]:
    c = p.identity_cert
    fields: dict[str, Any] = {
        "subject": c["subject"],
        "kind": c["kind"],
        "org": c["org"],
        "use": "sign",
        "pk": sign_keypair(p.sign_seed)[0],
        "created": c["created"],
    }
    fields.update(changes)
    return fields


async def test_staff_certificates_must_match_the_invitation(
    app_client: Client, clock: FakeClock
) -> None:
    setup = await setup_org(app_client, clock())
    _, code = await invite(app_client, setup.admin, "caseworker", clock())
    now = clock()
    p = make_person("caseworker", setup.org, now=now)
    # another organisation
    _resign_identity(p, certs.make_cert(**_fields(p, org=new_id())))
    await _refused(app_client, activation_body(p, code), 400, "certificate-mismatch")
    # a forged self-signature on an identity that is not yet org-certified
    p = make_person("caseworker", setup.org, now=now)
    forged = dict(p.identity)
    forged["sig"] = b64e(certs_sig_of_other(p))
    await _refused(
        app_client, {**activation_body(p, code), "identity": forged}, 400, ("invalid-identity")
    )
    await activate(app_client, make_person("caseworker", setup.org, now=now), code)


def certs_sig_of_other(p: Person) -> bytes:
    other = certs.sign_cert(p.identity_cert, random_bytes(32))
    return b64d(other["sig"], 64)


async def test_non_canonical_and_taken_names(app_client: Client, clock: FakeClock) -> None:
    setup, cw = await _staffed(app_client, clock)
    _, code = await invite(app_client, cw, "citizen", clock())
    p = make_person("citizen", cw.org, now=clock())
    body = activation_body(p, code)
    await _refused(app_client, None, 400, "non-canonical", raw=cj(body) + b" ")
    # a login name that is taken
    await _refused(app_client, {**body, "login": cw.login}, 409, "login-taken")
    # an account id already used by an account, a team or an org
    team = await create_team(app_client, setup)
    for taken in (cw.id, team, setup.org):
        q = make_person("citizen", cw.org, now=clock(), account=taken)
        await _refused(app_client, activation_body(q, code), 409, "account-exists")
    await activate(app_client, p, code)


async def test_one_code_two_concurrent_activations(app_client: Client, clock: FakeClock) -> None:
    _, cw = await _staffed(app_client, clock)
    _, code = await invite(app_client, cw, "citizen", clock())
    people = [make_person("citizen", cw.org, now=clock()) for _ in range(2)]
    used_before = await used_invitations(app_client)
    results = await asyncio.gather(
        *(send(app_client, "POST", "/api/v1/activation", activation_body(p, code)) for p in people)
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 410], results
    loser = next(body for status, body in results if status == 410)
    assert loser["type"] == "urn:postbox:problem:invitation-used"
    assert await used_invitations(app_client) == used_before + 1
    created = [p for p, (status, _) in zip(people, results, strict=True) if status == 201]
    async with app_client.app[DB].read() as conn:
        for p in people:
            exists = await app_client.app[KEYLOG].directory.current_identity(conn, p.id)
            assert (exists is not None) == (p in created)


# --- who may invite whom -------------------------------------------------------------------------
async def test_who_may_invite_whom(app_client: Client, clock: FakeClock) -> None:
    setup, cw = await _staffed(app_client, clock)
    other = await setup_org(app_client, clock())
    citizen = make_person("citizen", setup.org, now=clock())
    _, code = await invite(app_client, cw, "citizen", clock())
    await activate(app_client, citizen, code)
    await login(app_client, citizen)
    other_team = await create_team(app_client, other)
    now = clock()

    def body(kind: str, **changes: Any) -> dict[str, Any]:
        value = {
            "id": new_id(),
            "kind": kind,
            "team": None,
            "authoriser": b64e(random_bytes(32)),
            "expires": now + DAY,
        }
        value.update(changes)
        return value

    cases: list[tuple[Person, dict[str, Any], int, str]] = [
        (cw, body("caseworker"), 403, "may-not-invite"),
        (cw, body("admin"), 403, "may-not-invite"),
        (setup.admin, body("citizen"), 403, "may-not-invite"),
        (citizen, body("citizen"), 403, "may-not-invite"),
        (setup.admin, body("caseworker", team=other_team), 404, "team-not-found"),
        (cw, body("citizen", expires=now), 400, "invalid-expiry"),
        (cw, body("citizen", expires=now + 91 * DAY), 400, "invalid-expiry"),
        (cw, body("team"), 400, "malformed"),
        (cw, body("citizen", authoriser="short"), 400, "malformed"),
    ]
    for who, payload, status, code_ in cases:
        before = await table_counts(app_client)
        got, problem = await send(app_client, "POST", "/api/v1/invitations", payload, who=who)
        assert (got, problem["type"]) == (status, f"urn:postbox:problem:{code_}"), payload
        assert await table_counts(app_client) == before
    # ids and authorisers are unique
    first = body("citizen")
    assert (await send(app_client, "POST", "/api/v1/invitations", first, who=cw))[0] == 201
    for dup in (
        {**body("citizen"), "id": first["id"]},
        {**body("citizen"), "authoriser": (first["authoriser"])},
    ):
        got, problem = await send(app_client, "POST", "/api/v1/invitations", dup, who=cw)
        assert (got, problem["type"]) == (409, "urn:postbox:problem:invitation-exists")
    # an admin invites admins and connectors of its org
    assert (await send(app_client, "POST", "/api/v1/invitations", body("admin"), who=setup.admin))[
        0
    ] == 201
    # no session: 401
    assert (await send(app_client, "POST", "/api/v1/invitations", body("citizen")))[0] == 401


async def test_invitations_are_visible_to_their_inviter_only(
    app_client: Client, clock: FakeClock
) -> None:
    setup, cw = await _staffed(app_client, clock)
    other_cw = await add_staff(app_client, setup, "caseworker", clock())
    iid, _ = await invite(app_client, cw, "citizen", clock())
    for who in (other_cw, setup.admin):
        status, problem = await send(app_client, "GET", f"/api/v1/invitations/{iid}", who=who)
        assert (status, problem["type"]) == (404, "urn:postbox:problem:invitation-not-found")
        status, _ = await send(app_client, "POST", f"/api/v1/invitations/{iid}/verified", who=who)
        assert status == 404
    status, problem = await send(app_client, "POST", f"/api/v1/invitations/{iid}/verified", who=cw)
    assert (status, problem["type"]) == (409, "urn:postbox:problem:not-activated")
    status, inv = await send(app_client, "GET", f"/api/v1/invitations/{iid}", who=cw)
    assert (status, inv["used"], inv["account"], inv["act_mac"]) == (200, None, None, None)


# --- self-registration ---------------------------------------------------------------------------
async def test_self_registration(app_client: Client, clock: FakeClock) -> None:
    closed = await create_org(app_client)
    open_ = await create_org(app_client, self_registration=True)
    p = make_person("citizen", open_, now=clock())
    body = {**account_fields(p), "org": closed}
    before = await table_counts(app_client)
    status, problem = await send(app_client, "POST", "/api/v1/registration", body)
    assert (status, problem["type"]) == (404, "urn:postbox:problem:registration-closed")
    body["org"] = new_id()
    status, problem = await send(app_client, "POST", "/api/v1/registration", body)
    assert (status, problem["type"]) == (404, "urn:postbox:problem:registration-closed")
    assert await table_counts(app_client) == before
    # someone else's account id is refused here too
    other = make_person("citizen", open_, now=clock())
    mismatch = {**account_fields(other), "account": p.id, "org": open_}
    status, problem = await send(app_client, "POST", "/api/v1/registration", mismatch)
    assert (status, problem["type"]) == (400, "urn:postbox:problem:certificate-mismatch")
    # a code's members are not accepted here
    extra = {**account_fields(p), "org": open_, "act_mac": b64e(bytes(32))}
    status, problem = await send(app_client, "POST", "/api/v1/registration", extra)
    assert (status, problem["type"]) == (400, "urn:postbox:problem:malformed")
    assert await table_counts(app_client) == before

    status, done = await send(
        app_client, "POST", "/api/v1/registration", {**account_fields(p), "org": open_}
    )
    assert status == 201, done
    assert done == {"account": p.id, "kind": "citizen", "org": open_}
    assert await _chain_types(app_client, p.id) == ["identity", "key"]
    await login(app_client, p)
    status, me = await send(app_client, "GET", "/api/v1/me", who=p)
    assert (me["identity_verified"], me["kind"]) == (False, "citizen")
