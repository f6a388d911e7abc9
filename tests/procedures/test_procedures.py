"""Publishing and serving signed procedures through the real server (both databases)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from support.onboard import (
    NOW,
    Client,
    OrgSetup,
    Person,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
    new_id,
    send,
    setup_org,
)

from postbox.crypto.encoding import b64d, b64e, cj
from postbox.crypto.procedures import Procedure, form_digest, sign_procedure


def procedure(org: str, pid: str, version: int = 1, **change: Any) -> Procedure:
    p: dict[str, Any] = {
        "v": 1,
        "org": org,
        "id": pid,
        "version": version,
        "schema": {
            "type": "object",
            "properties": {"birth_date": {"type": "string", "format": "date"}},
        },
        "labels": {
            "de": {"title": "Einbürgerung", "birth_date": "Geburtsdatum"},
            "ar": {"title": "التجنس"},
            "uk": {"title": "Натуралізація"},
        },
        "documents": [
            {"name": "passport", "required": True, "max_size": 10_000_000},
            {"name": "photo", "required": False, "max_size": 2_000_000},
        ],
    }
    p.update(change)
    return p  # type: ignore[return-value]


@dataclass
class World:
    client: Client
    a: OrgSetup
    cw: Person
    b: OrgSetup


@pytest.fixture
async def w(app_client: Client) -> World:
    a = await setup_org(app_client, NOW)
    cw = await add_staff(app_client, a, "caseworker", NOW)
    b = await setup_org(app_client, NOW)
    return World(app_client, a, cw, b)


async def post(
    w: World,
    body: Any,
    *,
    who: Person | None = None,
    org: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    path = f"/api/v1/orgs/{org or w.a.org}/procedures"
    if raw is None:
        return await send(w.client, "POST", path, body, who=who or w.a.admin)
    resp = await w.client.post(
        path,
        data=raw,
        headers={**(who or w.a.admin).headers, "Content-Type": "application/json"},
    )
    return resp.status, await resp.json()


def code(answer: Any) -> str:
    return str(answer["type"]).rsplit(":", 1)[1]


async def test_publish_list_and_fetch(w: World) -> None:
    pid, other = new_id(), new_id()
    v1 = sign_procedure(procedure(w.a.org, pid), w.a.admin.sign_seed)
    status, body = await post(w, v1)
    assert status == 201, body
    assert body == {
        "org": w.a.org,
        "procedure": pid,
        "version": 1,
        "by": w.a.admin.identity_cert["kid"],
        "digest": b64e(form_digest(v1["procedure"])),
        "published": NOW,
    }
    v3 = sign_procedure(procedure(w.a.org, pid, 3), w.a.admin.sign_seed)
    assert (await post(w, v3))[0] == 201
    o1 = sign_procedure(procedure(w.a.org, other), w.a.admin.sign_seed)
    assert (await post(w, o1))[0] == 201
    # public: no session needed; the newest version of each, exactly as signed
    resp = await w.client.get(f"/api/v1/orgs/{w.a.org}/procedures")
    assert resp.status == 200
    raw = await resp.read()
    assert raw == cj({"procedures": sorted([v3, o1], key=lambda s: s["procedure"]["id"])})
    for version, signed in ((1, v1), (3, v3)):
        resp = await w.client.get(f"/api/v1/orgs/{w.a.org}/procedures/{pid}/{version}")
        assert resp.status == 200
        assert await resp.read() == cj(signed)
    # nothing of org B
    status, body = await send(w.client, "GET", f"/api/v1/orgs/{w.b.org}/procedures")
    assert (status, body) == (200, {"procedures": []})


async def test_missing_things_are_404(w: World) -> None:
    pid = new_id()
    await post(w, sign_procedure(procedure(w.a.org, pid), w.a.admin.sign_seed))
    for path, expected in (
        (f"/api/v1/orgs/{new_id()}/procedures", "org-not-found"),
        (f"/api/v1/orgs/{new_id()}/procedures/{pid}/1", "org-not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{pid}/2", "procedure-not-found"),
        (f"/api/v1/orgs/{w.b.org}/procedures/{pid}/1", "procedure-not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{new_id()}/1", "procedure-not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{pid}/9999999999999999", "procedure-not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{pid}/0", "not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{pid}/01", "not-found"),
        (f"/api/v1/orgs/{w.a.org}/procedures/{pid}/-1", "not-found"),
    ):
        status, body = await send(w.client, "GET", path)
        assert (status, code(body)) == (404, expected), path


async def test_signature_checks(w: World) -> None:
    pid = new_id()
    good = sign_procedure(procedure(w.a.org, pid), w.a.admin.sign_seed)

    forged = dict(good, sig=b64e(bytes(64)))
    flipped = bytearray(b64d(good["sig"], 64))
    flipped[0] ^= 1
    tampered = copy.deepcopy(good)
    tampered["procedure"]["labels"]["de"]["title"] = "Ausweisung"
    # sign_procedure itself refuses numbers in a schema: put one in a signed object
    numbers = {
        "procedure": procedure(w.a.org, pid, schema={"type": "integer"}),
        "sig": good["sig"],
        "by": good["by"],
    }
    wrong_org = sign_procedure(procedure(w.b.org, pid), w.a.admin.sign_seed)
    by_caseworker = sign_procedure(procedure(w.a.org, pid), w.cw.sign_seed)
    by_other_admin = sign_procedure(procedure(w.a.org, pid), w.b.admin.sign_seed)
    unknown_key = dict(good, by=new_id())
    cases: list[tuple[Any, str]] = [
        (forged, "invalid-procedure"),
        (dict(good, sig=b64e(bytes(flipped))), "invalid-procedure"),
        (tampered, "invalid-procedure"),
        (numbers, "invalid-procedure"),
        (wrong_org, "invalid-procedure"),
        ({"procedure": good["procedure"], "sig": good["sig"]}, "invalid-procedure"),
        (dict(good, extra=1), "invalid-procedure"),
        ([good], "invalid-procedure"),
        (by_caseworker, "unknown-admin-key"),
        (by_other_admin, "unknown-admin-key"),
        (unknown_key, "unknown-admin-key"),
    ]
    for body, expected in cases:
        status, answer = await post(w, body)
        assert (status, code(answer)) == (400, expected), (answer, expected)
    # nothing was published
    status, body = await send(w.client, "GET", f"/api/v1/orgs/{w.a.org}/procedures")
    assert body == {"procedures": []}
    # the good one goes
    assert (await post(w, good))[0] == 201


async def test_the_body_must_be_canonical(w: World) -> None:
    good = sign_procedure(procedure(w.a.org, new_id()), w.a.admin.sign_seed)
    raw = b"{ " + cj(good)[1:]
    status, answer = await post(w, None, raw=raw)
    assert (status, code(answer)) == (400, "non-canonical")


async def test_versions_only_grow(w: World) -> None:
    pid = new_id()
    seed = w.a.admin.sign_seed
    assert (await post(w, sign_procedure(procedure(w.a.org, pid, 2), seed)))[0] == 201
    for version in (2, 1):
        # the same version again, even with other content (or the very same object)
        status, answer = await post(
            w, sign_procedure(procedure(w.a.org, pid, version, labels={"en": {}}), seed)
        )
        assert (status, code(answer), answer["version"]) == (409, "procedure-version-exists", 2)
    assert (await post(w, sign_procedure(procedure(w.a.org, pid, 2), seed)))[0] == 409
    assert (await post(w, sign_procedure(procedure(w.a.org, pid, 7), seed)))[0] == 201
    # versions are per procedure id
    assert (await post(w, sign_procedure(procedure(w.a.org, new_id(), 1), seed)))[0] == 201


async def test_only_admins_of_the_org_publish(w: World) -> None:
    good = sign_procedure(procedure(w.a.org, new_id()), w.a.admin.sign_seed)
    status, answer = await post(w, good, who=w.cw)
    assert (status, code(answer)) == (403, "admin-only")
    status, answer = await post(w, good, who=w.b.admin)
    assert (status, code(answer)) == (404, "org-not-found")
    # org B's admin publishing a procedure for org A into org B
    status, answer = await post(w, good, who=w.b.admin, org=w.b.org)
    assert (status, code(answer)) == (400, "invalid-procedure")
    status, answer = await send(w.client, "POST", f"/api/v1/orgs/{w.a.org}/procedures", good)
    assert (status, code(answer)) == (401, "unauthorized")
