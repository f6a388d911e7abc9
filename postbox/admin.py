"""``postbox admin …``: the operator's tools, on the database directly.

The CLI builds the same settings as ``postbox serve`` (flags, ``POSTBOX_…`` variables, the
``--config`` TOML file), then starts the same application objects *without* listening:
``create_app(settings)`` with its start-up (secrets, database, migrations under their lock,
the key log, the accounts, audit and org services). So every command goes through the
same service layer as the HTTP API, and running it while servers run is safe: writes are
transactions, log appends are serialised in the database, secrets are shared files.

Commands (each takes ``--json`` for one machine-readable JSON object on stdout):

* ``org create --name de=… [--name en=…] --notification-name … [--self-registration]``
* ``org list`` · ``team list ORG``
* ``org update ORG --citizens-may-write yes|no``: whether citizens may write to the
  organisation's teams (replies in their threads stay possible); audited as ``org.update``
  without an actor, like the org admin's ``PATCH /api/v1/orgs/{org}``.
* ``org invite-admin ORG [--days N] [--letter FILE] [--language de|en]``: the CLI is the
  *inviting side* for an organisation's admins. It draws the activation code, registers
  only its authoriser, prints the code (8 groups of 4) and the link
  ``<origin>/activate#<code>``, and writes the printable letter (HTML, mode 0600) on request.
* ``invitation verify ID --code CODE``: after the admin activated, check the activation MAC
  over the identity the server holds with the code, and only then mark it verified.
* ``session list [--account ID]`` · ``session revoke ID``
* ``audit show [--limit N]`` · ``audit verify``
* ``notifications list [--state STATE] [--limit N]``: the e-mail outbox, with counts per
  state · ``notifications retry PK… | --all-dead``: dead notifications go out again, with
  their Message-IDs · ``notifications address ACCOUNT ADDRESS|--clear``: set an account's
  notification address as verified by the operator (the user's own verification by link
  comes with the settings routes).

Commands never send notifications themselves (the worker is off in the CLI's app).

Exit status: 0 done, 1 refused (the problem's code and detail on stderr), 2 bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from postbox.crypto import activation, certs
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import CryptoError
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import (
    AUDIT,
    CLOCK,
    DB,
    INVITATIONS,
    NOTIFICATIONS,
    ORGS,
    SETTINGS,
    TEAMS,
)
from postbox.mailbox.audit import store as audit_store
from postbox.mailbox.auth import store as auth_store
from postbox.mailbox.auth.store import SessionRecord
from postbox.mailbox.errors import BadRequest, Conflict, NotFound, PostboxError
from postbox.mailbox.invitations.letter import Letter, render_letter
from postbox.mailbox.notifications import store as notification_store
from postbox.mailbox.orgs.service import NewOrg, OrgChange, display_name, org_not_found
from postbox.mailbox.settings import Settings

DAY_MS: Final = 24 * 3600 * 1000
DEFAULT_INVITATION_DAYS: Final = 14
DEFAULT_AUDIT_LIMIT: Final = 50

AddFlags = Callable[[argparse.ArgumentParser], None]
SettingsFrom = Callable[[argparse.Namespace], Settings]


@dataclass(frozen=True)
class Output:
    """A command's result: one JSON object (``--json``) and the lines people read."""

    data: dict[str, Any]
    lines: list[str]


Handler = Callable[[web.Application, argparse.Namespace], Awaitable[Output]]


# --- running a command ---------------------------------------------------------------------------
@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[web.Application]:
    """The server's application, started (database, migrations, services) but not listening."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


def _run(handler: Handler, settings_from: SettingsFrom, args: argparse.Namespace) -> int:
    # an admin command is short-lived: it must not claim notifications and then vanish
    settings = replace(settings_from(args), notification_worker=False)

    async def go() -> Output:
        async with started(settings) as app:
            return await handler(app, args)

    try:
        out = asyncio.run(go())
    except PostboxError as exc:
        if args.json:
            print(json.dumps({"error": exc.code, "detail": exc.detail}, ensure_ascii=False))
        print(f"postbox admin: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out.data, ensure_ascii=False, sort_keys=True))
    else:
        for line in out.lines:
            print(line)
    return 0


# --- organisations -------------------------------------------------------------------------------
def _names(pairs: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for pair in pairs:
        lang, sep, name = pair.partition("=")
        if not sep:
            raise BadRequest(f"--name {pair!r}: expected LANG=NAME, e.g. de=Stadt Nürnberg")
        if lang in names:
            raise BadRequest(f"--name: {lang} given twice")
        names[lang] = name
    return names


def _org_json(org: Any) -> dict[str, Any]:
    data: dict[str, Any] = org.to_json()
    return data


async def org_create(app: web.Application, args: argparse.Namespace) -> Output:
    cmd = NewOrg.of(_names(args.name), args.notification_name, args.self_registration)
    org = await app[ORGS].create(cmd)
    return Output(
        _org_json(org),
        [
            f"organisation {org.id} created: {display_name(org.names)}",
            f"next: postbox admin org invite-admin {org.id} --letter admin-letter.html",
        ],
    )


async def org_list(app: web.Application, args: argparse.Namespace) -> Output:
    orgs = await app[ORGS].all()
    lines = [
        f"{o.id}  {display_name(o.names)}  "
        f"root={o.fingerprint or '-'}  self-registration={'yes' if o.self_registration else 'no'}"
        f"  citizens-may-write={'yes' if o.citizens_may_write else 'no'}"
        for o in orgs
    ]
    return Output({"orgs": [_org_json(o) for o in orgs]}, lines or ["no organisations"])


async def org_update(app: web.Application, args: argparse.Namespace) -> Output:
    org = await app[ORGS].change_by_operator(
        args.org, OrgChange(citizens_may_write=args.citizens_may_write == "yes")
    )
    return Output(
        _org_json(org),
        [
            f"organisation {org.id} ({display_name(org.names)}): citizens "
            + ("may" if org.citizens_may_write else "may not")
            + " write to its teams"
            + ("" if org.citizens_may_write else " (replies in their threads stay possible)")
        ],
    )


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never overwrite: the letter holds a live code)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


async def org_invite_admin(app: web.Application, args: argparse.Namespace) -> Output:
    org = await app[ORGS].find(args.org)
    if org is None:
        raise org_not_found()
    if not 1 <= args.days <= 90:
        raise BadRequest("--days: between 1 and 90", code="invalid-expiry")
    letter_path: Path | None = args.letter
    if letter_path is not None and await asyncio.to_thread(letter_path.exists):
        raise Conflict(f"{letter_path} exists; the CLI never overwrites a letter", code="exists")
    code = activation.generate_code()
    expires = app[CLOCK]() + args.days * DAY_MS
    invitation = await app[INVITATIONS].create_by_operator(
        invitation_id=b64e(random_bytes(16)),
        org_id=org.id,
        authoriser=activation.act_auth(code),
        expires=expires,
    )
    letter = Letter(
        code=code,
        origin=app[SETTINGS].origin,
        org_name=display_name(org.names, args.language),
        kind="admin",
        expires=expires,
        fingerprint=org.fingerprint,
        language=args.language,
    )
    if letter_path is not None:
        await asyncio.to_thread(_write_private, letter_path, render_letter(letter))
    data = {
        "invitation": invitation.id,
        "org": org.id,
        "kind": "admin",
        "code": letter.grouped_code,
        "link": letter.link,
        "expires": expires,
        "fingerprint": org.fingerprint,
        "letter": None if letter_path is None else str(letter_path),
    }
    lines = [
        f"invitation {invitation.id} for an admin of {display_name(org.names)}",
        f"activation code: {letter.grouped_code}",
        f"link:            {letter.link}",
        f"valid for {args.days} days; hand it over in person or by a trusted channel",
    ]
    if letter_path is not None:
        lines.append(f"letter written to {letter_path} (mode 0600)")
    lines.append(f"after activation: postbox admin invitation verify {invitation.id} --code <code>")
    return Output(data, lines)


async def invitation_verify(app: web.Application, args: argparse.Namespace) -> Output:
    """Check the activation MAC with the code the operator still holds, then mark verified."""
    try:
        code = activation.parse_code(args.code)
    except CryptoError as exc:
        raise BadRequest(f"--code: {exc}", code="malformed-code") from exc
    invitation = await app[INVITATIONS].get_by_operator(args.id)
    if invitation.account is None or invitation.identity is None or invitation.act_mac is None:
        raise Conflict("the invitation has not been activated yet", code="not-activated")
    cert = invitation.identity["cert"]
    try:
        if cert["subject"] != invitation.account:
            raise CryptoError("the identity belongs to another account")
        activation.verify_act_mac(code, cert, invitation.act_mac)
    except CryptoError as exc:
        raise Conflict(
            f"the activation MAC does not match ({type(exc).__name__}): this identity was NOT "
            "made by the holder of this code; do not certify it",
            code="act-mac-mismatch",
        ) from exc
    done = await app[INVITATIONS].mark_verified_by_operator(invitation.id)
    fingerprint = certs.fingerprint(certs.cert_pk(cert))
    return Output(
        {
            "invitation": done.id,
            "account": done.account,
            "verified": done.verified is not None,
            "identity_fingerprint": fingerprint,
        },
        [
            f"activation MAC verified: account {done.account} is the holder of the code",
            f"identity fingerprint: {fingerprint}",
        ],
    )


async def team_list(app: web.Application, args: argparse.Namespace) -> Output:
    if await app[ORGS].find(args.org) is None:
        raise org_not_found()
    teams = await app[TEAMS].list_of_org(args.org)
    lines = [
        f"{t.id}  {display_name(t.names)}  members={t.member_count}  "
        f"key={t.key_kid or '-'}{'  ROTATION PENDING' if t.rotation_pending else ''}"
        for t in teams
    ]
    return Output({"teams": [t.to_json() for t in teams]}, lines or ["no teams"])


# --- sessions ------------------------------------------------------------------------------------
def _session_json(s: SessionRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "account": s.account_id,
        "method": s.method,
        "created": s.created,
        "last_seen": s.last_seen,
        "expires": s.expires,
        "client": s.client,
    }


async def session_list(app: web.Application, args: argparse.Namespace) -> Output:
    async with app[DB].read() as conn:
        live = await auth_store.live_sessions(conn, args.account, now=app[CLOCK]())
    found = [_session_json(s) for s in live]
    lines = [
        f"{s['id']}  account={s['account']}  {s['method']}  client={s['client'] or '-'}"
        for s in found
    ]
    return Output({"sessions": found}, lines or ["no live sessions"])


async def session_revoke(app: web.Application, args: argparse.Namespace) -> Output:
    now = app[CLOCK]()
    async with app[DB].write() as conn:
        account = await auth_store.revoke_any_session(conn, session_id=args.id, now=now)
        if account is None:
            raise NotFound("no such live session", code="no-such-session")
        await app[AUDIT].record(
            conn,
            action="session-revoked",
            actor=None,
            subject=account,
            details={"session": args.id, "reason": "operator"},
            now=now,
        )
    return Output(
        {"session": args.id, "account": account, "revoked": True},
        [f"session {args.id} of account {account} revoked"],
    )


# --- audit ---------------------------------------------------------------------------------------
async def audit_show(app: web.Application, args: argparse.Namespace) -> Output:
    """The newest ``--limit`` entries, oldest first."""
    limit = max(1, min(args.limit, 1000))
    async with app[DB].read() as conn:
        head = await audit_store.last(conn)
        after = 0 if head is None else max(0, head[0] - limit)
        entries = await app[AUDIT].entries(conn, after=after, limit=limit)
    lines = [
        f"{e.seq:>6}  {e.at}  {e.action:<22} actor={e.actor or '-'} subject={e.subject or '-'} "
        f"{json.dumps(e.details, ensure_ascii=False, sort_keys=True)}"
        for e in entries
    ]
    return Output({"entries": [e.to_json() for e in entries]}, lines or ["the audit log is empty"])


async def audit_verify(app: web.Application, args: argparse.Namespace) -> Output:
    async with app[DB].read() as conn:
        report = await app[AUDIT].verify(conn)
    data = report.to_json()
    if not report.ok:
        raise Conflict(
            f"the audit log is broken at entry {report.broken_seq}: {report.reason}",
            code="audit-broken",
            extra={"report": data},
        )
    return Output(
        data,
        [
            f"audit log verified: {report.entries} entries, head {report.head_seq} "
            f"{b64e(report.head_hash)}",
            "note this head: a consistent rewrite of the tail is caught only by comparing heads",
        ],
    )


# --- notifications -------------------------------------------------------------------------------
async def notifications_list(app: web.Application, args: argparse.Namespace) -> Output:
    data = await app[NOTIFICATIONS].listing(args.state, args.limit)
    counts = data["counts"]
    lines = [
        "counts: " + (", ".join(f"{k}={v}" for k, v in counts.items()) or "the outbox is empty")
    ]
    for n in data["notifications"]:
        message = n["message"]
        lines.append(
            f"{n['pk']:>8}  {n['state']:<8} attempts={n['attempts']} account={n['account']} "
            f"message={message['from'] + '/' + message['id'] if message else '-'} "
            f"mail-id={n['mail_id'] or '-'} next={n['next_attempt']} "
            f"error={n['last_error'] or '-'}"
        )
    return Output(data, lines)


async def notifications_retry(app: web.Application, args: argparse.Namespace) -> Output:
    if bool(args.pk) == bool(args.all_dead):
        raise BadRequest("give notification numbers (PK …) or --all-dead", code="invalid-arguments")
    revived = await app[NOTIFICATIONS].retry(None if args.all_dead else args.pk)
    missing = sorted(set(args.pk) - set(revived)) if args.pk else []
    lines = [f"{len(revived)} dead notification(s) queued again (same Message-IDs)"]
    if missing:
        lines.append(f"not dead (left alone): {' '.join(map(str, missing))}")
    return Output({"retried": revived, "not_dead": missing}, lines)


async def notifications_address(app: web.Application, args: argparse.Namespace) -> Output:
    address = None if args.clear else args.address
    if (address is None) != bool(args.clear):
        raise BadRequest("give an ADDRESS or --clear", code="invalid-arguments")
    if address is not None and (
        address.count("@") != 1 or any(c.isspace() or c in "<>,;" for c in address)
    ):
        raise BadRequest(f"{address!r} is not a plain e-mail address", code="invalid-address")
    if not await app[NOTIFICATIONS].set_address(
        args.account, address, verified=address is not None
    ):
        raise NotFound("no such account", code="no-such-account")
    return Output(
        {"account": args.account, "address": address, "verified": address is not None},
        [
            f"account {args.account}: notifications "
            + (f"go to {address} (verified by the operator)" if address else "switched off")
        ],
    )


# --- the parser ----------------------------------------------------------------------------------
#: an id as the protocol writes it (22 b64url characters); one may well start with "-"
_ID_ARGUMENT: Final = re.compile(r"[A-Za-z0-9_-]{22}")


class _Parser(argparse.ArgumentParser):
    """Ids are base64url, so about one in 32 starts with ``-``: such an argument is still an id
    (``postbox admin session revoke -hX…``), not an option, unless it names an option."""

    def _parse_optional(self, arg_string: str) -> Any:
        if _ID_ARGUMENT.fullmatch(arg_string) and arg_string not in self._option_string_actions:
            return None
        return super()._parse_optional(arg_string)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_settings_flags: AddFlags,
    settings_from: SettingsFrom,
) -> None:
    """Add ``admin`` and its commands to the ``postbox`` parser."""
    admin = sub.add_parser("admin", help="operator tools (organisations, sessions, audit)")
    groups = admin.add_subparsers(dest="admin_group", required=True, parser_class=_Parser)

    def leaf(
        parent: argparse._SubParsersAction[_Parser],
        name: str,
        handler: Handler,
        text: str,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=text, description=text)
        add_settings_flags(p)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=lambda args: _run(handler, settings_from, args))
        return p

    org = groups.add_parser("org", help="organisations").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(org, "create", org_create, "create an organisation")
    p.add_argument(
        "--name",
        action="append",
        required=True,
        metavar="LANG=NAME",
        help="display name in one language (repeat for more languages)",
    )
    p.add_argument(
        "--notification-name",
        required=True,
        help="the neutral name e-mails use (e.g. the city, not the office)",
    )
    p.add_argument("--self-registration", action="store_true", help="citizens may self-register")
    leaf(org, "list", org_list, "list organisations")
    p = leaf(org, "update", org_update, "change an organisation's settings")
    p.add_argument("org", help="organisation id")
    p.add_argument(
        "--citizens-may-write",
        choices=("yes", "no"),
        required=True,
        help="may citizens write to the organisation's teams (replies always can)",
    )
    p = leaf(org, "invite-admin", org_invite_admin, "invite an admin of an organisation")
    p.add_argument("org", help="organisation id")
    p.add_argument("--days", type=int, default=DEFAULT_INVITATION_DAYS, help="validity (days)")
    p.add_argument("--letter", type=Path, help="write the printable letter (HTML) here")
    p.add_argument("--language", choices=("de", "en"), default="de", help="letter language")

    team = groups.add_parser("team", help="teams").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(team, "list", team_list, "list an organisation's teams")
    p.add_argument("org", help="organisation id")

    invitation = groups.add_parser("invitation", help="invitations").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(invitation, "verify", invitation_verify, "verify an activation with its code")
    p.add_argument("id", help="invitation id")
    p.add_argument("--code", required=True, help="the activation code handed over")

    session = groups.add_parser("session", help="sessions").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(session, "list", session_list, "list live sessions")
    p.add_argument("--account", help="only this account's sessions")
    p = leaf(session, "revoke", session_revoke, "revoke a session")
    p.add_argument("id", help="session id")

    audit = groups.add_parser("audit", help="the audit log").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(audit, "show", audit_show, "show the newest audit entries")
    p.add_argument("--limit", type=int, default=DEFAULT_AUDIT_LIMIT, help="how many entries")
    leaf(audit, "verify", audit_verify, "verify the audit log's hash chain")

    notifications = groups.add_parser("notifications", help="e-mail notifications").add_subparsers(
        dest="admin_command", required=True
    )
    p = leaf(notifications, "list", notifications_list, "list the notification outbox")
    p.add_argument("--state", choices=notification_store.STATES, help="only this state")
    p.add_argument("--limit", type=int, default=200, help="at most this many rows (oldest first)")
    p = leaf(notifications, "retry", notifications_retry, "send dead notifications again")
    p.add_argument("pk", nargs="*", type=int, help="notification numbers (from list)")
    p.add_argument("--all-dead", action="store_true", help="every dead notification")
    p = leaf(
        notifications,
        "address",
        notifications_address,
        "set an account's notification address (verified by the operator)",
    )
    p.add_argument("account", help="account id")
    p.add_argument("address", nargs="?", help="e-mail address")
    p.add_argument("--clear", action="store_true", help="remove the address")
