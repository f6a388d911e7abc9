"""Team mailbox cards through the real server on both databases: who sees which card, the
batch form, an organisation's cards, and one answer for everything one may not see."""

from __future__ import annotations

from typing import Any

from openapi.live import onboard_world, post_message, tree_head
from support.onboard import (
    NOW,
    Client,
    OrgSetup,
    Person,
    TeamKey,
    add_citizen,
    add_staff,
    app_client_fixture,  # noqa: F401 (a fixture)
    clock_fixture,  # noqa: F401 (a fixture)
    create_team,
    init_team,
    new_id,
    send,
    setup_org,
)

from postbox.crypto import certs
from postbox.crypto.envelope import Sealed, seal_message
from postbox.crypto.receipts import SthRef

PROBLEM = "urn:postbox:problem:"


def card_path(mailbox: str) -> str:
    return f"/api/v1/mailboxes/{mailbox}/card"


def batch_path(*ids: str) -> str:
    return "/api/v1/mailboxes/cards?ids=" + ",".join(ids)


def _same(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem without what differs per request."""
    return {k: v for k, v in problem.items() if k not in ("instance", "request_id")}


async def card_of(client: Client, who: Person, mailbox: str) -> dict[str, Any]:
    status, body = await send(client, "GET", card_path(mailbox), who=who)
    assert status == 200, body
    return dict(body)


async def no_card(client: Client, who: Person, mailbox: str) -> dict[str, Any]:
    """The one answer for a mailbox without a card for the caller (compared with the
    answer for an id that names nothing)."""
    status, body = await send(client, "GET", card_path(mailbox), who=who)
    assert (status, body["type"]) == (404, PROBLEM + "mailbox-not-found"), body
    _, unknown = await send(client, "GET", card_path(new_id()), who=who)
    assert _same(body) == _same(unknown)
    return dict(body)


async def batch(client: Client, who: Person, *ids: str) -> tuple[list[str], list[str]]:
    status, body = await send(client, "GET", batch_path(*ids), who=who)
    assert status == 200, body
    return [c["team"] for c in body["cards"]], list(body["unknown"])


async def set_open(client: Client, setup: OrgSetup, value: bool) -> None:
    status, body = await send(
        client,
        "PATCH",
        f"/api/v1/orgs/{setup.org}",
        {"citizens_may_write": value},
        who=setup.admin,
    )
    assert status == 200 and body["citizens_may_write"] is value, body


class Org:
    """An organisation with a keyed team (its caseworker the member) and a team without key."""

    def __init__(
        self, setup: OrgSetup, caseworker: Person, team: str, key: TeamKey, bare: str
    ) -> None:
        self.setup, self.caseworker, self.team, self.key, self.bare = (
            setup,
            caseworker,
            team,
            key,
            bare,
        )

    @property
    def id(self) -> str:
        return self.setup.org

    @classmethod
    async def make(cls, client: Client) -> Org:
        setup = await setup_org(client, NOW)
        caseworker = await add_staff(client, setup, "caseworker", NOW)
        team = await create_team(client, setup)
        key = await init_team(client, setup, team, caseworker, NOW)
        bare = await create_team(client, setup)
        return cls(setup, caseworker, team, key, bare)


def envelope(
    sender: Person,
    to: str,
    keys: dict[str, certs.Cert],
    sth: SthRef,
    *,
    from_: str | None = None,
    thread: str | None = None,
) -> Sealed:
    return seal_message(
        content={
            "subject": "Frage",
            "body": "…",
            "format": "text",
            "form": None,
            "attachments": [],
            "in_reply_to": None,
            "sth": {"size": sth["size"], "root": sth["root"]},
        },
        message_id=new_id(),
        kind="message",
        from_=from_ or sender.id,
        signer=sender.id,
        signer_seed=sender.sign_seed,
        to=[to],
        recipients=keys,
        thread=thread,
        case=None,
        created=NOW,
        blobs=[],
    )


async def deliver(client: Client, sender: Person, sealed: Sealed) -> str:
    status, body = await post_message(client, sender, sealed.body)
    assert status == 201, body
    return str(sealed.wire["header"]["id"])


async def delete_entry(client: Client, who: Person, mailbox: str, from_: str, msg: str) -> None:
    path = f"/api/v1/mailboxes/{mailbox}/messages/{from_}/{msg}"
    status, body = await send(client, "DELETE", path, who=who)
    assert status == 204, body


# --- staff --------------------------------------------------------------------------------------
async def test_staff_see_their_own_organisations_teams_only(app_client: Client) -> None:
    a, b = await Org.make(app_client), await Org.make(app_client)
    card = await card_of(app_client, a.caseworker, a.team)
    assert card == {
        "team": a.team,
        "names": {"de": "Aufenthaltstitel", "en": "Residence permits"},
        "org": a.id,
        "org_names": {"de": "Stadt Nürnberg – Ausländerbehörde", "en": "City of Nuremberg"},
        "citizens_may_write": True,
    }
    # a team without a key has a card too; so do admins (they manage, they do not read)
    assert (await card_of(app_client, a.setup.admin, a.bare))["team"] == a.bare
    # another organisation's team, a person's mailbox: as an id that names nothing
    for who, mailbox in (
        (a.caseworker, b.team),
        (a.setup.admin, b.bare),
        (a.caseworker, b.caseworker.id),
        (a.caseworker, a.caseworker.id),
    ):
        await no_card(app_client, who, mailbox)
    # even when the other organisation lets citizens write
    assert await batch(app_client, a.caseworker, b.team, a.team) == ([a.team], [b.team])


# --- citizens -----------------------------------------------------------------------------------
async def test_citizens_see_teams_of_open_organisations_and_of_their_own_mail(
    app_client: Client,
) -> None:
    a, b = await Org.make(app_client), await Org.make(app_client)
    writer = await add_citizen(app_client, a.caseworker, NOW)  # of org A, writes to B
    stranger = await add_citizen(app_client, a.caseworker, NOW)
    # both organisations let citizens write (the default): every team has a card
    everything = [a.team, a.bare, b.team, b.bare]
    assert await batch(app_client, stranger, *everything) == (everything, [])

    sth = await tree_head(app_client)
    keys = {b.team: b.key.cert, writer.id: writer.enc_cert}
    await deliver(app_client, writer, envelope(writer, b.team, keys, sth))
    await set_open(app_client, b.setup, False)

    # B's teams are gone for the stranger; the writer keeps the card of the team it wrote to
    assert await batch(app_client, stranger, *everything) == ([a.team, a.bare], [b.team, b.bare])
    await no_card(app_client, stranger, b.team)
    assert (await card_of(app_client, writer, b.team))["citizens_may_write"] is False
    await no_card(app_client, writer, b.bare)
    # the stranger's 404 for B's team is the 404 for nothing at all (also in a batch)
    unknown = new_id()
    assert await batch(app_client, stranger, b.team, unknown) == ([], [b.team, unknown])


async def test_a_teams_message_to_a_citizen_keeps_its_card(app_client: Client) -> None:
    """The team deletes its sent copy and the organisation closes: the citizen's inbox still
    names the sender."""
    a = await Org.make(app_client)
    citizen = await add_citizen(app_client, a.caseworker, NOW)
    sth = await tree_head(app_client)
    keys = {a.team: a.key.cert, citizen.id: citizen.enc_cert}
    sealed = envelope(a.caseworker, citizen.id, keys, sth, from_=a.team)
    msg = await deliver(app_client, a.caseworker, sealed)
    await delete_entry(app_client, a.caseworker, a.team, a.team, msg)
    await set_open(app_client, a.setup, False)
    assert (await card_of(app_client, citizen, a.team))["team"] == a.team
    # once the citizen deletes it too, nothing links them any more
    await delete_entry(app_client, citizen, citizen.id, a.team, msg)
    await no_card(app_client, citizen, a.team)


async def test_a_thread_keeps_its_parties_cards(app_client: Client) -> None:
    a = await Org.make(app_client)
    citizen = await add_citizen(app_client, a.caseworker, NOW)
    sth = await tree_head(app_client)
    keys = {a.team: a.key.cert, citizen.id: citizen.enc_cert}
    thread = new_id()
    msg = await deliver(app_client, citizen, envelope(citizen, a.team, keys, sth, thread=thread))
    await set_open(app_client, a.setup, False)
    # both copies deleted: the thread still has both parties
    await delete_entry(app_client, citizen, citizen.id, citizen.id, msg)
    await delete_entry(app_client, a.caseworker, a.team, citizen.id, msg)
    assert await batch(app_client, citizen, a.team, a.bare) == ([a.team], [a.bare])


async def test_a_case_keeps_its_teams_card(app_client: Client) -> None:
    w = await onboard_world(app_client)  # the citizen's application opened a case
    admin, citizen, cw = w.admin, w.citizen, w.caseworker
    status, body = await send(
        app_client, "PATCH", f"/api/v1/orgs/{w.org}", {"citizens_may_write": False}, who=admin
    )
    assert status == 200, body
    inbox = f"/api/v1/mailboxes/{citizen.id}/messages"
    for from_, msg in ((citizen.id, w.application), (w.team, w.decision)):
        status, body = await send(app_client, "DELETE", f"{inbox}/{from_}/{msg}", who=citizen)
        assert status == 204, body
    status, body = await send(app_client, "GET", inbox + "?folder=sent", who=citizen)
    assert body["messages"] == []
    assert (await card_of(app_client, citizen, w.team))["team"] == w.team
    other = await add_citizen(app_client, cw, NOW)
    await no_card(app_client, other, w.team)


# --- an organisation's cards (the recipient picker) ------------------------------------------
async def test_an_organisations_cards(app_client: Client) -> None:
    a, b = await Org.make(app_client), await Org.make(app_client)
    citizen = await add_citizen(app_client, a.caseworker, NOW)
    path = f"/api/v1/orgs/{a.id}/cards"
    for who in (a.caseworker, a.setup.admin, citizen):
        status, body = await send(app_client, "GET", path, who=who)
        assert status == 200, body
        # oldest first; the clock stood still, so by id
        assert [c["team"] for c in body["cards"]] == sorted([a.team, a.bare])
        assert {c["org"] for c in body["cards"]} == {a.id}
    # staff of another organisation: the organisation does not exist for them
    status, refused = await send(app_client, "GET", path, who=b.caseworker)
    assert (status, refused["type"]) == (404, PROBLEM + "org-not-found"), refused
    _, unknown = await send(app_client, "GET", f"/api/v1/orgs/{new_id()}/cards", who=b.caseworker)
    assert _same(refused) == _same(unknown)
    # a closed organisation, for a citizen (even its own): as an unknown one
    await set_open(app_client, a.setup, False)
    status, closed = await send(app_client, "GET", path, who=citizen)
    assert _same(closed) == _same(refused)
    status, body = await send(app_client, "GET", path, who=a.caseworker)
    assert status == 200 and len(body["cards"]) == 2, body
    # an open organisation without teams: no cards, not a 404
    empty = await setup_org(app_client, NOW)
    status, body = await send(app_client, "GET", f"/api/v1/orgs/{empty.org}/cards", who=citizen)
    assert (status, body) == (200, {"cards": []})


# --- the batch's query ------------------------------------------------------------------------
async def test_the_batch_query_is_strict(app_client: Client) -> None:
    a = await Org.make(app_client)
    cw = a.caseworker
    # repeats are answered once, in the order first asked
    assert await batch(app_client, cw, a.bare, a.team, a.bare, cw.id) == (
        [a.bare, a.team],
        [cw.id],
    )
    ids = [new_id() for _ in range(200)]
    assert await batch(app_client, cw, *ids) == ([], ids)
    for query, code in (
        ("", "missing-parameter"),
        (f"?ids={a.team}&ids={a.bare}", "invalid-query"),
        (f"?ids={a.team}&limit=1", "unknown-parameter"),
        ("?ids=", "invalid-query"),
        (f"?ids={a.team},", "invalid-query"),
        ("?ids=nonsense", "invalid-query"),
        ("?ids=" + ",".join([*ids, a.team]), "invalid-query"),
    ):
        status, body = await send(app_client, "GET", "/api/v1/mailboxes/cards" + query, who=cw)
        assert (status, body["type"]) == (400, PROBLEM + code), (query, body)
    # a session is required, like everywhere
    status, body = await send(app_client, "GET", batch_path(a.team))
    assert (status, body["type"]) == (401, PROBLEM + "unauthorized")
