"""A live server with an onboarded organisation, for the mailbox tests (issue 4).

Everything goes through the real server over HTTP with the client library
(:class:`postbox.client.Client`), exactly as ``postbox-desk`` does it (see
``tests/desk/test_onboarding.py``): the operator invites the org admin; the admin activates,
creates the org root key, certifies itself and endorses the server; creates a team; invites
and certifies two caseworkers; the first caseworker creates the team key (the admin approves)
and adds the second; a caseworker invites two citizens, who activate. Everyone ends up logged
in, each with its own state folder (its own machine) and an opened keyring (the caseworkers'
with the team key).

Use it as the ``mail_world`` pytest fixture (both databases, from ``tests/conftest.py``) or
directly::

    async with open_mail_world(db_url, tmp_path) as w:
        await w.citizen.client.messages...            # the first citizen
        w.caseworker.keyring.team_keys(w.team)        # the team key
        await w.desk(w.caseworker, "inbox", passphrase=True)

or, on a server a test started itself (other settings, a clock, tampering)::

    async with live_server(db_url, tmp_path / "var", tampering=t) as live:
        async with onboard_mail_world(live, tmp_path) as w:
            ...

The state folders also hold the desk's ``desk.json`` (server and login), so ``postbox-desk
--state-dir FOLDER`` acts as that person without ``--server``/``--login``.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from postbox.client import Client
from postbox.client.account import Activated
from postbox.client.keyring import Keyring
from postbox.client.orgs import new_root_seed
from postbox.client.rootfile import OrgRootKey
from postbox.crypto import certs
from postbox.crypto.primitives import sign_keypair
from postbox.desk.cli import amain
from postbox.desk.config import DeskConfig, save_config
from postbox.mailbox.clock import Clock, system_clock
from support.client import (
    DeskResult,
    Live,
    Tampering,
    _pipe,
    desk,
    live_server,
    operator_invites_admin,
)

ORG_NAME: Final = "Stadt Nürnberg – Ausländerbehörde"
TEAM_NAMES: Final = {"de": "Aufenthaltstitel", "en": "Residence permits"}


def passphrase_of(role: str) -> str:
    """Each person's passphrase (distinct, so that an at-rest scan can look for each)."""
    return f"Kanal-Fähre-Quitte-7-Zimt-Orbit-{role}"


@dataclass
class Person:
    """One user agent: its client (logged in), account and opened keys."""

    role: str  # "admin", "caseworker", "caseworker2", "citizen", "citizen2"
    kind: str  # the account kind: admin, caseworker, citizen
    client: Client
    account: str
    login: str
    passphrase: str
    keyring: Keyring
    state_dir: Path
    identity_fingerprint: str
    recovery_key: str

    @property
    def mailbox(self) -> str:
        """The person's own mailbox id (its account id; a team's mailbox is the team id)."""
        return self.account


@dataclass
class MailWorld:
    live: Live
    tmp: Path
    org: str
    org_name: str
    #: the org root fingerprint (as printed on letters)
    org_fingerprint: str
    #: the org root key itself (to sign procedures, certify more staff)
    root: OrgRootKey
    team: str
    team_names: dict[str, str]
    admin: Person
    caseworkers: tuple[Person, Person]
    citizens: tuple[Person, Person]
    #: everything :meth:`desk` printed (for canary scans)
    outputs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def caseworker(self) -> Person:
        """The first caseworker (made the team key)."""
        return self.caseworkers[0]

    @property
    def caseworker2(self) -> Person:
        return self.caseworkers[1]

    @property
    def citizen(self) -> Person:
        return self.citizens[0]

    @property
    def citizen2(self) -> Person:
        return self.citizens[1]

    @property
    def people(self) -> tuple[Person, ...]:
        return (self.admin, *self.caseworkers, *self.citizens)

    @property
    def passphrases(self) -> list[str]:
        return [p.passphrase for p in self.people]

    async def desk(
        self, person: Person, *args: str, passphrase: bool = False, expect: int | None = 0
    ) -> DeskResult:
        """Run ``postbox-desk ARGS --json`` in-process as ``person`` (its state folder);
        ``passphrase`` pipes its passphrase; ``expect`` is the exit code (None: any)."""
        result = await desk(
            *args,
            "--state-dir",
            str(person.state_dir),
            passphrases=[person.passphrase] if passphrase else (),
        )
        self.outputs.append(result.out)
        if expect is not None:
            assert result.code == expect, (args, result.code, result.out, result.err)
        return result

    async def desk_text(
        self, person: Person, *args: str, passphrase: bool = False, expect: int | None = 0
    ) -> DeskResult:
        """:meth:`desk` without ``--json``: what a person at the terminal reads."""
        argv = [*args, "--state-dir", str(person.state_dir)]
        fd = _pipe([person.passphrase]) if passphrase else None
        if fd is not None:
            argv += ["--passphrase-fd", str(fd)]
        out, err = io.StringIO(), io.StringIO()
        try:
            code = await amain(argv, stdout=out, stderr=err)
        finally:
            if fd is not None:
                os.close(fd)
        result = DeskResult(code, out.getvalue(), err.getvalue())
        self.outputs.append(result.out)
        if expect is not None:
            assert code == expect, (args, code, result.out, result.err)
        return result


# --- building it ------------------------------------------------------------------------------
async def _new_client(
    live: Live, tmp: Path, role: str, login: str, stack: AsyncExitStack
) -> Client:
    state_dir = tmp / f"mail-{role}"
    client = await stack.enter_async_context(Client(live.url, state_dir=state_dir, login=login))
    await client.connect()
    return client


async def _activate(
    live: Live,
    tmp: Path,
    stack: AsyncExitStack,
    *,
    role: str,
    login: str,
    code: bytes,
    org_fingerprint: str | None = None,
) -> tuple[Client, Activated, Keyring]:
    client = await _new_client(live, tmp, role, login, stack)
    done = await client.account.activate(
        code, login, passphrase_of(role), "de", org_fingerprint=org_fingerprint
    )
    # as ``postbox-desk activate``: log in at once (reusing the keys derived at activation)
    result = await client.account.login(done.login, passphrase_of(role), activated=done)
    save_config(tmp / f"mail-{role}", DeskConfig(live.url, done.login))
    return client, done, result.keyring


@asynccontextmanager
async def onboard_mail_world(
    live: Live, tmp: Path, *, citizen_logins: Sequence[str] = ()
) -> AsyncIterator[MailWorld]:
    """Onboard an organisation on ``live`` (see the module docs); clients close on exit."""
    async with AsyncExitStack() as stack:
        yield await _onboard(live, tmp, stack, citizen_logins)


async def _onboard(
    live: Live, tmp: Path, stack: AsyncExitStack, citizen_logins: Sequence[str]
) -> MailWorld:
    def person(client: Client, role: str, done: Activated, keyring: Keyring) -> Person:
        return Person(
            role=role,
            kind=done.kind,
            client=client,
            account=done.account,
            login=done.login,
            passphrase=passphrase_of(role),
            keyring=keyring,
            state_dir=tmp / f"mail-{role}",
            identity_fingerprint=done.identity_fingerprint,
            recovery_key=done.recovery_key,
        )

    # -- the operator creates the organisation and invites its admin --
    org, admin_code = await operator_invites_admin(live, ORG_NAME)

    # -- the admin activates, creates the org root, certifies itself, endorses the server --
    admin_client, admin_done, _ = await _activate(
        live, tmp, stack, role="admin", login="admin@nuernberg.example", code=admin_code
    )
    seed = new_root_seed()
    root = OrgRootKey(org=org, name=ORG_NAME, pk=sign_keypair(seed)[0], seed=seed)
    await admin_client.orgs.register_root(root)
    await admin_client.orgs.certify(root, admin_done.account)
    await admin_client.orgs.endorse_server(root)
    fingerprint = certs.fingerprint(root.pk)
    admin_login = await admin_client.account.login(
        admin_done.login, passphrase_of("admin"), activated=admin_done
    )
    admin = person(admin_client, "admin", admin_done, admin_login.keyring)

    # -- a team and two certified caseworkers --
    team = (await admin_client.orgs.create_team(dict(TEAM_NAMES)))["team"]
    staff: list[tuple[Client, Activated]] = []
    for role, login in (
        ("caseworker", "k.meier@nuernberg.example"),
        ("caseworker2", "l.schulz@nuernberg.example"),
    ):
        invite = await admin_client.invitations.create("caseworker", team=team)
        client, done, _ = await _activate(
            live, tmp, stack, role=role, login=login, code=invite.code, org_fingerprint=fingerprint
        )
        await admin_client.invitations.verify(invite.id, invite.code)
        await admin_client.orgs.certify(root, done.account)
        staff.append((client, done))

    keyrings = []
    for (client, done), role in zip(staff, ("caseworker", "caseworker2"), strict=True):
        result = await client.account.login(done.login, passphrase_of(role), activated=done)
        keyrings.append(result.keyring)

    # -- the first caseworker makes the team key (the admin approves) and adds the second --
    (cw1_client, cw1_done), (cw2_client, cw2_done) = staff
    cw1_keys, request = await cw1_client.teams.request_key(keyrings[0], team)
    approval = await admin_client.teams.approve(admin.keyring, request)
    info = await cw1_client.teams.install_key(cw1_keys, request, approval)
    add = cw1_client.teams.member_request(cw1_keys, info, cw2_done.account, "add")
    add_ok = await admin_client.teams.approve(admin.keyring, add)
    await cw1_client.teams.add_member(
        cw1_keys,
        team,
        cw2_done.account,
        fingerprint=cw2_done.identity_fingerprint,
        approval=add_ok,
    )
    cw2_keys = await cw2_client.teams.open_wraps(keyrings[1], team)
    caseworkers = (
        person(cw1_client, "caseworker", cw1_done, cw1_keys),
        person(cw2_client, "caseworker2", cw2_done, cw2_keys),
    )

    # -- the caseworker invites two citizens, who activate and log in --
    logins = list(citizen_logins) or ["Ayşe.Yılmaz@example.org", "jonas.becker@example.org"]
    invites = [await cw1_client.invitations.create("citizen") for _ in range(2)]

    async def citizen(role: str, login: str, code: bytes) -> tuple[Client, Activated, Keyring]:
        return await _activate(live, tmp, stack, role=role, login=login, code=code)

    made = await asyncio.gather(
        *(
            citizen(role, login, inv.code)
            for role, login, inv in zip(("citizen", "citizen2"), logins, invites, strict=True)
        )
    )
    for inv in invites:
        await cw1_client.invitations.verify(inv.id, inv.code)
    citizens = (
        person(made[0][0], "citizen", made[0][1], made[0][2]),
        person(made[1][0], "citizen2", made[1][1], made[1][2]),
    )
    return MailWorld(
        live=live,
        tmp=tmp,
        org=org,
        org_name=ORG_NAME,
        org_fingerprint=fingerprint,
        root=root,
        team=team,
        team_names=dict(TEAM_NAMES),
        admin=admin,
        caseworkers=caseworkers,
        citizens=citizens,
    )


@asynccontextmanager
async def open_mail_world(
    db_url: str,
    tmp: Path,
    *,
    clock: Clock = system_clock,
    tampering: Tampering | None = None,
) -> AsyncIterator[MailWorld]:
    """Start a live server on loopback (data in ``tmp/var``) and onboard the world on it."""
    async with (
        live_server(db_url, tmp / "var", clock=clock, tampering=tampering) as live,
        onboard_mail_world(live, tmp) as world,
    ):
        yield world


__all__ = [
    "ORG_NAME",
    "TEAM_NAMES",
    "MailWorld",
    "Person",
    "onboard_mail_world",
    "open_mail_world",
    "passphrase_of",
]
