"""Team mailboxes through the real server on both databases: keys, wraps, members, rotation."""

from __future__ import annotations

from typing import Any

from support.onboard import (
    Client,
    FakeClock,
    OrgSetup,
    Person,
    TeamKey,
    add_citizen,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
    create_team,
    init_team,
    make_person,
    membership,
    new_id,
    send,
    setup_org,
    table_counts,
    team_key,
    wrap,
)

from postbox.crypto import certs
from postbox.crypto.encoding import b64e
from postbox.crypto.keystate import replay
from postbox.crypto.primitives import box_keypair
from postbox.mailbox.appkeys import DB, KEYLOG


async def _chain(client: Client, subject: str) -> list[dict[str, Any]]:
    async with client.app[DB].read() as conn:
        return [dict(e) for e in await client.app[KEYLOG].events(conn, subject)]


async def _team_state(client: Client, setup: OrgSetup, team: str) -> Any:
    """The team chain replayed with the crypto core, as a client would (org chain pinned)."""
    org_chain = await _chain(client, setup.org)
    root = setup.root["org_root"]
    org_state = replay(org_chain, org_roots={setup.org: root})  # type: ignore[arg-type]
    return replay(
        await _chain(client, team),  # type: ignore[arg-type]
        org_roots={setup.org: root},
        orgs={setup.org: org_state},
    )


async def _refused(
    client: Client,
    method: str,
    path: str,
    body: Any,
    who: Person,
    status: int,
    code: str,
) -> None:
    before = await table_counts(client)
    got, problem = await send(client, method, path, body, who=who)
    assert (got, problem["type"]) == (status, f"urn:postbox:problem:{code}"), problem
    assert await table_counts(client) == before


class Scene:
    """An org with a team whose first member has set the key, and two more caseworkers."""

    def __init__(
        self, setup: OrgSetup, team: str, key: TeamKey, first: Person, others: list[Person]
    ) -> None:
        self.setup, self.team, self.key, self.first, self.others = setup, team, key, first, others

    @property
    def admin(self) -> Person:
        return self.setup.admin

    def members_path(self) -> str:
        return f"/api/v1/teams/{self.team}/members"


async def _scene(client: Client, clock: FakeClock, *, init: bool = True) -> Scene:
    now = clock()
    setup = await setup_org(client, now)
    first = await add_staff(client, setup, "caseworker", now)
    others = [await add_staff(client, setup, "caseworker", now) for _ in range(2)]
    team = await create_team(client, setup)
    key = (
        await init_team(client, setup, team, first, now)
        if init
        else team_key(team, setup.org, setup.admin, now)
    )
    return Scene(setup, team, key, first, others)


async def _add(client: Client, clock: FakeClock, s: Scene, member: Person, by: Person) -> None:
    clock.advance(1)
    status, body = await send(
        client,
        "POST",
        s.members_path(),
        {
            "member": member.id,
            "membership": membership(s.team, member, s.admin, clock()),
            "wrap": wrap(s.key, member, by),
        },
        who=by,
    )
    assert status == 201, body


# --- happy paths ---------------------------------------------------------------------------------
async def test_first_member_add_remove_rotate(app_client: Client, clock: FakeClock) -> None:
    s = await _scene(app_client, clock)
    second, third = s.others
    status, team = await send(app_client, "GET", f"/api/v1/teams/{s.team}", who=s.first)
    assert status == 200, team
    assert team["members"] == [s.first.id]
    assert team["key"] == s.key.signed
    assert team["rotation_pending"] is False
    assert team["names"] == {"de": "Aufenthaltstitel", "en": "Residence permits"}

    await _add(app_client, clock, s, second, s.first)
    await _add(app_client, clock, s, third, s.first)

    # every member's wrap opens to the certified team key (the server only stored it)
    for member in (s.first, second, third):
        status, body = await send(app_client, "GET", f"/api/v1/teams/{s.team}/wraps", who=member)
        assert status == 200, body
        assert len(body["wraps"]) == 1
        by = s.first.identity_cert
        sk = certs.open_team_wrap(
            body["wraps"][0],
            team_cert=s.key.cert,
            member_pk=box_keypair(member.enc_sk)[0],
            member_sk=member.enc_sk,
            by_identity=by,
            current_members={s.first.id, second.id, third.id},
        )
        assert sk == s.key.sk

    state = await _team_state(app_client, s.setup, s.team)
    assert state.members == {s.first.id, second.id, third.id}
    assert [e["type"] for e in state.events] == ["key", "member_add", "member_add", "member_add"]

    # removal (a member sends it, the admin signed it): rotation pending, wraps gone
    clock.advance(1)
    status, team = await send(
        app_client,
        "DELETE",
        f"{s.members_path()}/{third.id}",
        {"membership": membership(s.team, third, s.admin, clock())},
        who=second,
    )
    assert status == 200, team
    assert team["rotation_pending"] is True
    assert sorted(team["members"]) == sorted([s.first.id, second.id])
    status, problem = await send(app_client, "GET", f"/api/v1/teams/{s.team}/wraps", who=third)
    assert (status, problem["type"]) == (403, "urn:postbox:problem:not-a-member")
    state = await _team_state(app_client, s.setup, s.team)
    assert state.rotation_pending and third.id not in state.members

    # no new member on a key the removed member knows
    fourth = await add_staff(app_client, s.setup, "caseworker", clock())
    clock.advance(1)
    await _refused(
        app_client,
        "POST",
        s.members_path(),
        {
            "member": fourth.id,
            "membership": membership(s.team, fourth, s.admin, clock()),
            "wrap": wrap(s.key, fourth, s.first),
        },
        s.first,
        409,
        "rotation-pending",
    )

    # rotation by a remaining member: the new key to everyone, the old key re-wrapped too
    clock.advance(1)
    new = team_key(s.team, s.setup.org, s.admin, clock())
    wraps = [wrap(new, m, second) for m in (s.first, second)]
    wraps.append(wrap(s.key, s.first, second))
    status, team = await send(
        app_client,
        "POST",
        f"/api/v1/teams/{s.team}/key",
        {"cert": new.signed, "wraps": wraps, "membership": None},
        who=second,
    )
    assert status == 201, team
    assert team["rotation_pending"] is False
    assert team["key"] == new.signed
    state = await _team_state(app_client, s.setup, s.team)
    assert not state.rotation_pending
    assert state.current_encryption(clock())["kid"] == new.cert["kid"]
    status, body = await send(app_client, "GET", f"/api/v1/teams/{s.team}/wraps", who=s.first)
    kids = sorted(w["team_wrap"]["team_kid"] for w in body["wraps"])
    assert kids == sorted([s.key.cert["kid"], new.cert["kid"]])
    # the re-wrap of the old key replaced the earlier one (one wrap per key and member)
    assert len(body["wraps"]) == 2

    # listing (staff of the org)
    status, listing = await send(app_client, "GET", f"/api/v1/orgs/{s.setup.org}/teams", who=second)
    assert status == 200
    assert listing["teams"][0]["member_count"] == 2
    assert listing["teams"][0]["key_kid"] == new.cert["kid"]


async def test_last_member_leaves_and_a_new_first_member_starts_again(
    app_client: Client, clock: FakeClock
) -> None:
    s = await _scene(app_client, clock)
    clock.advance(1)
    status, team = await send(
        app_client,
        "DELETE",
        f"{s.members_path()}/{s.first.id}",
        {"membership": membership(s.team, s.first, s.admin, clock())},
        who=s.admin,
    )
    assert status == 200, team
    assert team["members"] == [] and team["rotation_pending"] is True
    clock.advance(1)
    key = await init_team(app_client, s.setup, s.team, s.others[0], clock())
    status, team = await send(app_client, "GET", f"/api/v1/teams/{s.team}", who=s.others[0])
    assert team["members"] == [s.others[0].id]
    assert team["key"] == key.signed and team["rotation_pending"] is False


# --- refusals ------------------------------------------------------------------------------------
async def test_team_key_init_refusals(app_client: Client, clock: FakeClock) -> None:
    s = await _scene(app_client, clock, init=False)
    now = clock()
    path = f"/api/v1/teams/{s.team}/key"
    first, second = s.others
    good: dict[str, Any] = {
        "cert": s.key.signed,
        "wraps": [wrap(s.key, first, first)],
        "membership": membership(s.team, first, s.admin, now),
    }
    other_team = await create_team(app_client, s.setup)
    uncertified = await add_staff(app_client, s.setup, "caseworker", now, certified=False)
    cases: list[tuple[dict[str, Any], Person, int, str]] = [
        ({**good, "membership": None}, first, 400, "membership-required"),
        (good, second, 403, "not-the-member"),
        # certified by a caseworker, not by an admin key
        (
            {**good, "cert": certs.sign_cert(s.key.cert, first.sign_seed)},
            first,
            400,
            "unknown-admin-key",
        ),
        # a certificate of another team
        (
            {**good, "cert": team_key(other_team, s.setup.org, s.admin, now).signed},
            first,
            400,
            "invalid-team-key",
        ),
        # membership signed by a caseworker
        (
            {**good, "membership": membership(s.team, first, second, now)},
            first,
            400,
            "unknown-admin-key",
        ),
        # membership of another team
        (
            {**good, "membership": membership(other_team, first, s.admin, now)},
            first,
            400,
            "invalid-membership",
        ),
        # the wrap made by someone who is not (becoming) a member
        ({**good, "wraps": [wrap(s.key, first, second)]}, first, 400, "invalid-wrap"),
        ({**good, "wraps": []}, first, 400, "wraps-incomplete"),
        # an uncertified caseworker cannot be the first member
        (
            {
                **good,
                "wraps": [wrap(s.key, uncertified, uncertified)],
                "membership": membership(s.team, uncertified, s.admin, now),
            },
            uncertified,
            409,
            "not-certified",
        ),
        ({**good, "extra": True}, first, 400, "malformed"),
    ]
    for body, who, status, code in cases:
        await _refused(app_client, "POST", path, body, who, status, code)
    # tampering with the sealed key breaks the wrap's signature
    tampered = wrap(s.key, first, first)
    tampered["team_wrap"] = {**tampered["team_wrap"], "sealed": b64e(bytes(80))}
    await _refused(
        app_client, "POST", path, {**good, "wraps": [tampered]}, first, 400, "invalid-wrap"
    )
    # admins hold no team keys: an admin cannot be the first member
    await _refused(
        app_client,
        "POST",
        path,
        {**good, "membership": membership(s.team, s.admin, s.admin, now)},
        s.admin,
        400,
        "not-eligible",
    )
    status, body = await send(app_client, "POST", path, good, who=first)
    assert status == 201, body
    # the same key cannot be registered twice
    await _refused(
        app_client, "POST", path, {**good, "membership": None}, first, 409, "team-key-exists"
    )


async def test_member_changes_refusals(app_client: Client, clock: FakeClock) -> None:
    s = await _scene(app_client, clock)
    second, third = s.others
    clock.advance(1)
    now = clock()
    good: dict[str, Any] = {
        "member": second.id,
        "membership": membership(s.team, second, s.admin, now),
        "wrap": wrap(s.key, second, s.first),
    }
    stale = team_key(s.team, s.setup.org, s.admin, now)
    citizen = await add_citizen(app_client, s.first, now)
    ghost = make_person("caseworker", s.setup.org, now=now)
    cases: list[tuple[dict[str, Any], Person, int, str]] = [
        # only admins and current members send membership changes
        (good, third, 403, "not-a-member"),
        # the wrap must come from a current member, not from the newcomer or an outsider
        ({**good, "wrap": wrap(s.key, second, second)}, s.first, 400, "invalid-wrap"),
        ({**good, "wrap": wrap(s.key, second, third)}, s.admin, 400, "invalid-wrap"),
        # the wrap of a key that is not the current team key
        ({**good, "wrap": wrap(stale, second, s.first)}, s.first, 400, "invalid-wrap"),
        # a wrap for somebody else
        ({**good, "wrap": wrap(s.key, third, s.first)}, s.first, 400, "invalid-wrap"),
        # membership naming another account
        (
            {**good, "membership": membership(s.team, third, s.admin, now)},
            s.first,
            400,
            "invalid-membership",
        ),
        ({**good, "member": s.first.id}, s.first, 409, "already-member"),
        (
            {
                **good,
                "member": citizen.id,
                "membership": membership(s.team, citizen, s.admin, now),
                "wrap": wrap(s.key, citizen, s.first),
            },
            s.first,
            400,
            "not-eligible",
        ),
        (
            {**good, "member": ghost.id, "membership": membership(s.team, ghost, s.admin, now)},
            s.first,
            404,
            "account-not-found",
        ),
    ]
    for body, who, status, code in cases:
        await _refused(app_client, "POST", s.members_path(), body, who, status, code)
    # a wrap sealed to a key that is not the newcomer's current encryption key
    old_enc = second.enc
    second_new_keys = certs.make_cert(
        subject=second.id,
        kind="caseworker",
        org=s.setup.org,
        use="encrypt",
        pk=box_keypair(b"\x01" * 32)[0],
        created=now,
        expires=now + 1000,
    )
    second.enc = certs.sign_cert(second_new_keys, second.sign_seed)
    await _refused(
        app_client,
        "POST",
        s.members_path(),
        {**good, "wrap": wrap(s.key, second, s.first)},
        s.first,
        400,
        "invalid-wrap",
    )
    second.enc = old_enc
    status, body = await send(app_client, "POST", s.members_path(), good, who=s.admin)
    assert status == 201, body
    # removing: only members, with a membership naming them, signed by an admin
    await _refused(
        app_client,
        "DELETE",
        f"{s.members_path()}/{third.id}",
        {"membership": membership(s.team, third, s.admin, now + 1)},
        s.first,
        404,
        "not-a-member",
    )
    await _refused(
        app_client,
        "DELETE",
        f"{s.members_path()}/{second.id}",
        {"membership": membership(s.team, second, s.first, now + 1)},
        s.first,
        400,
        "unknown-admin-key",
    )
    # a replayed "add" statement cannot remove (the log wants a newer `at` per member)
    await _refused(
        app_client,
        "DELETE",
        f"{s.members_path()}/{second.id}",
        {"membership": good["membership"]},
        s.first,
        400,
        "invalid-certificate",
    )


async def test_no_members_before_the_team_key(app_client: Client, clock: FakeClock) -> None:
    s = await _scene(app_client, clock, init=False)
    first = s.others[0]
    await _refused(
        app_client,
        "POST",
        s.members_path(),
        {
            "member": first.id,
            "membership": membership(s.team, first, s.admin, clock()),
            "wrap": wrap(s.key, first, first),
        },
        s.admin,
        409,
        "team-key-missing",
    )


async def test_rotation_refusals(app_client: Client, clock: FakeClock) -> None:
    s = await _scene(app_client, clock)
    second, third = s.others
    await _add(app_client, clock, s, second, s.first)
    clock.advance(1)
    new = team_key(s.team, s.setup.org, s.admin, clock())
    path = f"/api/v1/teams/{s.team}/key"
    full = [wrap(new, s.first, s.first), wrap(new, second, s.first)]
    cases: list[tuple[dict[str, Any], Person, int, str]] = [
        (
            {"cert": new.signed, "wraps": full[:1], "membership": None},
            s.first,
            400,
            ("wraps-incomplete"),
        ),
        ({"cert": new.signed, "wraps": full, "membership": None}, third, 403, "not-a-member"),
        ({"cert": new.signed, "wraps": full, "membership": None}, s.admin, 403, "not-a-member"),
        (
            {
                "cert": new.signed,
                "wraps": full,
                "membership": membership(s.team, s.first, s.admin, clock()),
            },
            s.first,
            400,
            "membership-not-expected",
        ),
        (
            {"cert": new.signed, "wraps": [*full, full[0]], "membership": None},
            s.first,
            400,
            "invalid-wrap",
        ),
        # a wrap of a key the team never had
        (
            {
                "cert": new.signed,
                "wraps": [
                    *full,
                    wrap(team_key(s.team, s.setup.org, s.admin, clock()), second, s.first),
                ],
                "membership": None,
            },
            s.first,
            400,
            "invalid-wrap",
        ),
    ]
    for body, who, status, code in cases:
        await _refused(app_client, "POST", path, body, who, status, code)
    status, body = await send(
        app_client,
        "POST",
        path,
        {"cert": new.signed, "wraps": full, "membership": None},
        who=second,
    )
    assert status == 201, body


# --- visibility ----------------------------------------------------------------------------------
async def test_teams_exist_only_for_staff_of_their_org(
    app_client: Client, clock: FakeClock
) -> None:
    s = await _scene(app_client, clock)
    other = await setup_org(app_client, clock())
    other_cw = await add_staff(app_client, other, "caseworker", clock())
    citizen = await add_citizen(app_client, s.first, clock())
    for who in (other.admin, other_cw, citizen):
        status, problem = await send(app_client, "GET", f"/api/v1/teams/{s.team}", who=who)
        assert (status, problem["type"]) == (404, "urn:postbox:problem:team-not-found")
    status, problem = await send(app_client, "GET", f"/api/v1/teams/{new_id()}", who=s.first)
    assert (status, problem["type"]) == (404, "urn:postbox:problem:team-not-found")
    await _refused(
        app_client,
        "POST",
        f"/api/v1/teams/{s.team}/key",
        {"cert": s.key.signed, "wraps": [], "membership": None},
        other.admin,
        404,
        "team-not-found",
    )
    for who in (other.admin, other_cw, citizen):
        status, _ = await send(app_client, "GET", f"/api/v1/orgs/{s.setup.org}/teams", who=who)
        assert status == 404
    # team creation: admins of the org only, with fresh ids
    names = {"de": "Einbürgerung"}
    await _refused(
        app_client,
        "POST",
        f"/api/v1/orgs/{s.setup.org}/teams",
        {"team": new_id(), "names": names},
        s.first,
        403,
        "admin-only",
    )
    await _refused(
        app_client,
        "POST",
        f"/api/v1/orgs/{s.setup.org}/teams",
        {"team": new_id(), "names": names},
        other.admin,
        404,
        "org-not-found",
    )
    for taken in (s.team, s.first.id, s.setup.org):
        await _refused(
            app_client,
            "POST",
            f"/api/v1/orgs/{s.setup.org}/teams",
            {"team": taken, "names": names},
            s.admin,
            409,
            "team-exists",
        )
    for bad in ({}, {"de": ""}, {"de": "a\nb"}, {"DE": "x"}, {"de": 1}):
        await _refused(
            app_client,
            "POST",
            f"/api/v1/orgs/{s.setup.org}/teams",
            {"team": new_id(), "names": bad},
            s.admin,
            400,
            "malformed",
        )
