"""``postbox-desk``: the caseworker's and org admin's command line, on ``postbox.client``.

Every command talks to the server over HTTP only (the desk never opens a database), prints
text or, with ``--json``, one JSON object, and exits 0 on success, 1 on an error, 2 on a
usage error and **3 on a security alarm** (changed server keys, a key or proof that does not
verify, a foreign key, a wrong fingerprint): scripts must stop on 3.

Passphrases come from the terminal (no echo) or ``--passphrase-fd N`` (account) and
``--root-passphrase-fd N`` (org root key file), one line each; never from arguments.

Team changes need a member and an org admin (see :mod:`postbox.client.teams`); the desk
hands a *request* file from the member to the admin (``team approve``) and the *approval*
file back (``--approval``).

This module parses the command line and runs one command; the commands are in
:mod:`postbox.desk.commands` (one module per area), what they share in
:mod:`postbox.desk.context`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from postbox import __version__
from postbox.client.cases import SIGNED_ONLY, STATUSES
from postbox.client.errors import (
    ClientError,
    FingerprintMismatch,
    KeyAlarm,
    KeyMismatch,
    PinMismatch,
    UsageError,
    VerificationFailed,
)
from postbox.crypto.errors import (
    BadProof,
    BrokenChain,
    CryptoError,
    ForkDetected,
    IdentityChanged,
    KeySubstitution,
    StaleTreeHead,
    WeakPassphrase,
)
from postbox.desk.commands.account import (
    cmd_activate,
    cmd_login,
    cmd_logout,
    cmd_sessions,
    cmd_whoami,
)
from postbox.desk.commands.cases import (
    cmd_case_list,
    cmd_case_pattern,
    cmd_case_show,
    cmd_case_status,
    cmd_decide,
    cmd_procedure_list,
    cmd_procedure_publish,
    cmd_procedure_show,
)
from postbox.desk.commands.invite import cmd_invite
from postbox.desk.commands.keys import cmd_keys_verify
from postbox.desk.commands.mail import (
    FOLDERS,
    REPLY_KINDS,
    SEND_KINDS,
    MessageAlarm,
    cmd_inbox,
    cmd_read,
    cmd_receipts,
    cmd_reply,
    cmd_save_attachments,
    cmd_send,
    cmd_teams,
)
from postbox.desk.commands.org import (
    cmd_org_certify,
    cmd_org_init,
    cmd_org_pending,
    cmd_org_revoke,
    cmd_org_settings,
)
from postbox.desk.commands.recipients import cmd_recipients
from postbox.desk.commands.team import (
    cmd_team_add,
    cmd_team_approve,
    cmd_team_create,
    cmd_team_init,
    cmd_team_list,
    cmd_team_open,
    cmd_team_remove,
    cmd_team_rotate,
    cmd_team_show,
)
from postbox.desk.config import load_config, state_root
from postbox.desk.context import EXIT_ALARM, EXIT_ERROR, EXIT_USAGE, Command, Ctx
from postbox.desk.prompt import Passphrases

_ALARMS: Final = (
    PinMismatch,
    VerificationFailed,
    KeyMismatch,
    KeyAlarm,
    FingerprintMismatch,
    MessageAlarm,
)
_CRYPTO_ALARMS: Final = (
    BadProof,
    BrokenChain,
    ForkDetected,
    IdentityChanged,
    KeySubstitution,
    StaleTreeHead,
)


# --- parser -----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Ids are b64url and may start with ``-``: only ``--long`` options are options here
    (argparse would read ``-wjtv…`` as an unknown short option otherwise)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw["add_help"] = False
        super().__init__(*args, **kw)
        # argparse treats arguments matching this as values when no option looks like one
        self._negative_number_matcher = re.compile(r"^-[^-]")
        self.add_argument("--help", action="help", help="show this help and exit")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    s = argparse.SUPPRESS
    common.add_argument("--server", default=s, help="server URL, e.g. https://postbox.example")
    common.add_argument("--login", default=s, help="login name (remembered after login)")
    common.add_argument("--state-dir", default=s, help="state folder (default: XDG config)")
    common.add_argument("--json", action="store_true", default=s, help="print one JSON object")
    common.add_argument("--passphrase-fd", type=int, default=s, help="read the passphrase here")
    common.add_argument("--log-key", default=s, help="pin this log key (b64) instead of TOFU")
    common.add_argument("--receipt-key", default=s, help="pin this receipt key (b64)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="postbox-desk", description="Postbox desk client", parents=[common])
    parser.add_argument("--version", action="version", version=f"postbox-desk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Command, help_text: str, target: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = target.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(fn=fn)
        return p

    p = add("activate", cmd_activate, "activate an account with an activation code")
    p.add_argument("code", help="the activation code (8 groups of 4 characters)")
    p.add_argument("--language", default="de")
    p.add_argument("--org-fingerprint", help="the organisation fingerprint from the letter")
    add("login", cmd_login, "log in (passphrase)")
    add("logout", cmd_logout, "end the session")
    add("whoami", cmd_whoami, "show the logged-in account")
    p = add("sessions", cmd_sessions, "list (or revoke) your sessions")
    p.add_argument("--revoke", metavar="ID")

    p = add("invite", cmd_invite, "invite someone (or: invite verify ID --code CODE)")
    p.add_argument("words", nargs="*", metavar="verify ID")
    p.add_argument("--kind", choices=["citizen", "caseworker", "connector", "admin"])
    p.add_argument("--team")
    p.add_argument("--days", type=int, default=30, help="validity in days (default 30)")
    p.add_argument("--letter", metavar="FILE", help="write the printable letter here")
    p.add_argument("--language", default="de", help="language of the letter")
    p.add_argument("--code", help="the activation code (invite verify)")

    org = sub.add_parser("org", help="organisation (org admins)").add_subparsers(
        dest="org_command", required=True
    )
    root_file = argparse.ArgumentParser(add_help=False)
    root_file.add_argument("--root-file", help="the encrypted org root key file")
    root_file.add_argument("--root-passphrase-fd", type=int, help="read its passphrase here")
    p = add("init", cmd_org_init, "create the org root key and certify yourself", org)
    p.add_argument("--name", help="the organisation name in the root (default: its German name)")
    _merge(p, root_file)
    p = add("certify", cmd_org_certify, "certify a staff identity with the org root", org)
    p.add_argument("account")
    p.add_argument("--fingerprint", help="the identity fingerprint the person read to you")
    _merge(p, root_file)
    p = add("revoke", cmd_org_revoke, "revoke a staff member's keys", org)
    p.add_argument("account")
    p.add_argument("--reason", default="left", choices=["left", "compromised", "superseded"])
    add("pending", cmd_org_pending, "identities waiting for certification", org)
    p = add("settings", cmd_org_settings, "show (or, admins: change) the org's settings", org)
    p.add_argument(
        "--citizens-may-write",
        choices=["yes", "no"],
        help="may citizens write to the org's teams (replies in their threads always can)",
    )

    team = sub.add_parser("team", help="team mailboxes").add_subparsers(
        dest="team_command", required=True
    )
    p = add("create", cmd_team_create, "create a team (org admins)", team)
    p.add_argument("--name", action="append", required=True, metavar="LANG=TEXT")
    p.add_argument("--id", help="the team id (default: random)")
    p = add("list", cmd_team_list, "list an organisation's teams", team)
    p.add_argument("org", nargs="?")
    p = add("show", cmd_team_show, "show a team (verified from the log)", team)
    p.add_argument("team")
    exchange = argparse.ArgumentParser(add_help=False)
    exchange.add_argument("--approval", metavar="FILE", help="the admin's approval")
    exchange.add_argument("--request-out", metavar="FILE", help="write the request here")
    p = add("init", cmd_team_init, "create a team's key (first member)", team)
    p.add_argument("team")
    _merge(p, exchange)
    p = add("approve", cmd_team_approve, "sign a member's team request (org admins)", team)
    p.add_argument("request")
    p.add_argument("--out", metavar="FILE")
    p = add("add", cmd_team_add, "add a member (checks its fingerprint)", team)
    p.add_argument("team")
    p.add_argument("account")
    p.add_argument("--fingerprint", required=True)
    _merge(p, exchange)
    p = add("remove", cmd_team_remove, "remove a member (the key is rotated)", team)
    p.add_argument("team")
    p.add_argument("account")
    _merge(p, exchange)
    p = add("rotate", cmd_team_rotate, "rotate a team's key after a removal", team)
    p.add_argument("team")
    _merge(p, exchange)
    p = add("open", cmd_team_open, "open your wraps of a team's keys", team)
    p.add_argument("team")

    keys = sub.add_parser("keys", help="keys and the transparency log").add_subparsers(
        dest="keys_command", required=True
    )
    p = add("verify", cmd_keys_verify, "verify an account's or team's keys", keys)
    p.add_argument("account")
    p.add_argument("--fingerprint", help="compare the identity with this fingerprint")

    _mail_commands(sub, add)
    return parser


def _mail_commands(sub: Any, add: Any) -> None:
    """The mailbox commands (issue 4): mail, cases, procedures."""
    attach = argparse.ArgumentParser(add_help=False)
    attach.add_argument("--attach", action="extend", nargs="+", metavar="FILE", help="attach files")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--team", help="the team mailbox it is in (id or name)")

    add("teams", cmd_teams, "the mailboxes you read: your own and your teams'")
    p = add("recipients", cmd_recipients, "the team mailboxes you may write to in an org")
    p.add_argument("org", nargs="?", help="the organisation (default: your own)")
    p = add("inbox", cmd_inbox, "list a mailbox (your own, or --team T)")
    p.add_argument("--team", help="a team mailbox (id or name)")
    p.add_argument("--unread", action="store_true", help="only unread messages")
    p.add_argument("--folder", default="inbox", choices=FOLDERS)
    p.add_argument("--limit", type=int, default=50, help="at most N messages (1…200)")
    p.add_argument("--case", help="only the messages of this case id")
    p.add_argument("--thread", help="only the messages of this thread")
    p.add_argument("--before", metavar="CURSOR", help="the next page (as printed)")
    p.add_argument(
        "--open", action="store_true", help="decrypt to show subjects (asks the passphrase)"
    )
    p = add("read", cmd_read, "decrypt and verify a message, mark it read, send a read receipt")
    p.add_argument("message", metavar="ID", help="FROM/ID or a handle from `inbox`")
    p.add_argument("--no-receipt", action="store_true", help="send no read receipt")
    _merge(p, which)
    p = add("reply", cmd_reply, "reply in the message's thread")
    p.add_argument("message", metavar="ID", help="FROM/ID or a handle from `inbox`")
    p.add_argument("--body-file", required=True, metavar="FILE", help="the text (- for stdin)")
    p.add_argument("--subject", help="default: Re: the original subject")
    p.add_argument("--kind", default="message", choices=REPLY_KINDS)
    _merge(p, attach)
    _merge(p, which)
    p = add("send", cmd_send, "write a new message (an application with --procedure)")
    p.add_argument("--to", action="append", required=True, metavar="MAILBOX")
    p.add_argument("--subject", required=True)
    p.add_argument("--body-file", required=True, metavar="FILE", help="the text (- for stdin)")
    p.add_argument(
        "--kind", choices=SEND_KINDS, help="default: message (application with a procedure)"
    )
    p.add_argument("--procedure", metavar="ID", help="apply for this published procedure")
    p.add_argument("--version", type=int, help="the procedure version (default: the newest)")
    p.add_argument("--form-file", metavar="FILE", help="the form's fields as a JSON object")
    p.add_argument("--as", dest="as_team", metavar="TEAM", help="write for this team")
    p.add_argument("--thread", help="continue this thread")
    p.add_argument("--case", help="about this case")
    _merge(p, attach)
    p = add("save-attachments", cmd_save_attachments, "decrypt and save a message's attachments")
    p.add_argument("message", metavar="ID", help="FROM/ID or a handle from `inbox`")
    p.add_argument("dir", metavar="DIR", help="the folder to save into (files never overwritten)")
    _merge(p, which)
    p = add("receipts", cmd_receipts, "verify submission receipt, delivery record, read receipts")
    p.add_argument("message", metavar="ID", help="FROM/ID or a handle from `inbox`")
    _merge(p, which)

    case = sub.add_parser("case", help="cases (Vorgänge)").add_subparsers(
        dest="case_command", required=True
    )
    p = add("list", cmd_case_list, "your cases (a team's with --team)", case)
    p.add_argument("--team", help="a team mailbox (id or name)")
    p.add_argument("--status", help="only cases with this status")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--before", metavar="CURSOR")
    p = add("show", cmd_case_show, "a case with its history and messages", case)
    p.add_argument("case", metavar="CASE", help="case id or reference number")
    p = add("status", cmd_case_status, "move a case to another status (server metadata)", case)
    p.add_argument("case", metavar="CASE", help="case id or reference number")
    p.add_argument("status", choices=[s for s in STATUSES if s not in SIGNED_ONLY])
    p = add("pattern", cmd_case_pattern, "show or set the reference pattern (org admins)", case)
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="e.g. ABH-{year}-{seq:6}")
    p = add("decide", cmd_decide, "send the signed decision of a case, with its document")
    p.add_argument("target", metavar="ID", help="case id, reference, or a message of the case")
    p.add_argument("--body-file", required=True, metavar="FILE", help="the text (- for stdin)")
    p.add_argument("--subject", help="default: Bescheid REFERENCE")
    _merge(p, attach)
    _merge(p, which)

    proc = sub.add_parser("procedure", help="procedures (forms)").add_subparsers(
        dest="procedure_command", required=True
    )
    p = add("publish", cmd_procedure_publish, "sign and publish a procedure (org admins)", proc)
    p.add_argument("file", metavar="FILE", help="JSON: schema, labels, documents [, id, version]")
    p = add("list", cmd_procedure_list, "an organisation's procedures (verified)", proc)
    p.add_argument("--org", help="the organisation (or one of its team ids)")
    p = add("show", cmd_procedure_show, "one procedure (verified)", proc)
    p.add_argument("procedure", metavar="ID")
    p.add_argument("--version", type=int)
    p.add_argument("--org", help="the organisation (or one of its team ids)")


def _merge(parser: argparse.ArgumentParser, extra: argparse.ArgumentParser) -> None:
    for action in extra._actions:  # argparse has no public API to merge parents afterwards
        parser._add_action(action)


# --- running ----------------------------------------------------------------------------------
def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, _ALARMS + _CRYPTO_ALARMS):
        return EXIT_ALARM
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_ERROR


def _report(ctx_json: bool, out: TextIO, err: TextIO, exc: Exception) -> int:
    if isinstance(exc, ClientError):
        payload = exc.to_json()
    elif isinstance(exc, WeakPassphrase):
        payload = {"error": "WeakPassphrase", "code": str(exc), "detail": "passphrase too weak"}
    else:
        payload = {"error": type(exc).__name__, "code": type(exc).__name__, "detail": str(exc)}
    code = _exit_code(exc)
    if ctx_json:
        out.write(json.dumps({**payload, "exit": code}, sort_keys=True) + "\n")
    prefix = "SECURITY ALARM" if code == EXIT_ALARM else "error"
    err.write(f"{prefix}: {payload['detail']} [{payload['code']}]\n")
    return code


async def amain(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    passphrases: Passphrases | None = None,
) -> int:
    """Run one command in the current event loop (tests call this, or :func:`main`)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    as_json = bool(getattr(args, "json", False))
    try:
        root = state_root(getattr(args, "state_dir", None))
        ctx = Ctx(args, out, err, passphrases or Passphrases(), root, load_config(root))
        result: int = await args.fn(ctx)
        return result
    except (ClientError, CryptoError) as exc:
        return _report(as_json, out, err, exc)


def main(argv: Sequence[str] | None = None, **kw: Any) -> int:
    """The console script: ``postbox-desk …``."""
    code = asyncio.run(amain(argv, **kw))
    if argv is None:
        sys.exit(code)
    return code


__all__ = ["amain", "build_parser", "main"]
