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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from postbox import __version__
from postbox.client import Client, Pins
from postbox.client.errors import (
    ClientError,
    FingerprintMismatch,
    KeyAlarm,
    KeyMismatch,
    PinMismatch,
    UsageError,
    VerificationFailed,
)
from postbox.client.keyring import Keyring
from postbox.client.keys import cert_fingerprint, check_fingerprint
from postbox.client.orgs import new_root_seed
from postbox.client.rootfile import OrgRootKey, open_root_file, read_root_header, seal_root_file
from postbox.client.state import write_private_file
from postbox.client.teams import Approval, TeamRequest
from postbox.crypto import certs
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
from postbox.crypto.primitives import sign_keypair
from postbox.desk.config import DeskConfig, load_config, save_config, state_root
from postbox.desk.prompt import Passphrases

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_ALARM: Final = 3
_ALARMS: Final = (PinMismatch, VerificationFailed, KeyMismatch, KeyAlarm, FingerprintMismatch)
_CRYPTO_ALARMS: Final = (
    BadProof,
    BrokenChain,
    ForkDetected,
    IdentityChanged,
    KeySubstitution,
    StaleTreeHead,
)
ROOTS_FOLDER: Final = "org-roots"


# --- context ----------------------------------------------------------------------------------
@dataclass
class Ctx:
    args: argparse.Namespace
    out: TextIO
    err: TextIO
    passphrases: Passphrases
    root: Path
    config: DeskConfig

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def server(self) -> str:
        url = getattr(self.args, "server", None) or self.config.server
        if not url:
            raise UsageError("which server? give --server URL (remembered after login)")
        return str(url)

    def login(self, required: bool = True) -> str | None:
        name = getattr(self.args, "login", None) or self.config.login
        if required and not name:
            raise UsageError("which account? give --login NAME (remembered after login)")
        return name

    def client(self, login: str | None) -> Client:
        log_key = getattr(self.args, "log_key", None)
        receipt_key = getattr(self.args, "receipt_key", None)
        pins = None
        if log_key or receipt_key:
            if not (log_key and receipt_key):
                raise UsageError("--log-key and --receipt-key go together")
            try:
                pins = Pins.from_b64(log_key, receipt_key)
            except CryptoError as exc:
                raise UsageError(f"--log-key/--receipt-key: {exc}") from exc
        return Client(self.server(), state_dir=self.root, login=login, pins=pins)

    def remember(self, server: str, login: str) -> None:
        self.config.server, self.config.login = server, login
        save_config(self.root, self.config)

    def passphrase(self, prompt: str = "Passphrase: ", *, confirm: bool = False) -> str:
        return self.passphrases.read(
            prompt, getattr(self.args, "passphrase_fd", None), confirm=confirm
        )

    def root_passphrase(self, prompt: str, *, confirm: bool = False) -> str:
        return self.passphrases.read(
            prompt, getattr(self.args, "root_passphrase_fd", None), confirm=confirm
        )

    def emit(self, data: dict[str, Any], lines: Sequence[str]) -> None:
        if self.json:
            self.out.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
        else:
            for line in lines:
                self.out.write(line + "\n")

    def warn(self, text: str) -> None:
        self.err.write(f"WARNING: {text}\n")


async def _keyring(ctx: Ctx, client: Client) -> Keyring:
    return await client.account.open_keys(ctx.passphrase())


def _read_json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _write_exchange(ctx: Ctx, path: str | None, value: dict[str, Any]) -> str | None:
    """Write a request/approval file (0600) or, without a path, return it for printing."""
    if path is None:
        return None
    write_private_file(Path(path), (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())
    return path


# --- account ----------------------------------------------------------------------------------
async def cmd_activate(ctx: Ctx) -> int:
    login = ctx.args.login
    if not login:
        raise UsageError("choose a login name with --login NAME")
    passphrase = ctx.passphrase("Choose a passphrase: ", confirm=True)
    async with ctx.client(login) as client:
        await client.connect()
        done = await client.account.activate(
            ctx.args.code,
            login,
            passphrase,
            ctx.args.language,
            org_fingerprint=ctx.args.org_fingerprint,
        )
        result = await client.account.login(done.login, passphrase, activated=done)
        root = client.session.state.org_roots.get(done.org or "")
        org_fp = None if root is None else certs.org_fingerprint(root)
        ctx.remember(ctx.server(), done.login)
    data = {
        "account": done.account,
        "kind": done.kind,
        "org": done.org,
        "login": done.login,
        "recovery_key": done.recovery_key,
        "identity_fingerprint": done.identity_fingerprint,
        "org_fingerprint": org_fp,
        "pending_certification": result.check.pending,
    }
    lines = [
        f"Activated {done.kind} account {done.account} as {done.login!r}.",
        f"Your identity fingerprint: {done.identity_fingerprint}",
    ]
    if org_fp:
        lines.append(f"Organisation root fingerprint: {org_fp} (compare it with your letter)")
    if result.check.pending:
        lines.append("Your keys wait for your organisation's certification.")
    lines += [
        "",
        "RECOVERY KEY (shown only now; print it or write it down and keep it safe):",
        f"    {done.recovery_key}",
    ]
    ctx.emit(data, lines)
    return EXIT_OK


async def cmd_login(ctx: Ctx) -> int:
    login = ctx.login()
    assert login is not None
    passphrase = ctx.passphrase()
    async with ctx.client(login) as client:
        await client.connect()
        result = await client.account.login(login, passphrase)
        ctx.remember(ctx.server(), client.session.state.login or login)
    check = result.check
    foreign = [{"seq": f.seq, "type": f.type, "kid": f.kid} for f in check.foreign]
    data = {
        "account": result.account,
        "kind": result.me.get("kind"),
        "org": result.me.get("org"),
        "login": result.me.get("login"),
        "pending_certification": check.pending,
        "identity_revoked": check.identity_revoked,
        "foreign_events": foreign,
    }
    for f in check.foreign:
        ctx.warn(f"a key event you did not make is in your chain: {f.type} {f.kid} (seq {f.seq})")
    if check.identity_revoked:
        ctx.warn("your identity key has been revoked")
    lines = [f"Logged in as {result.me.get('login')} ({result.me.get('kind')}, {result.account})."]
    if check.pending:
        lines.append("Your keys wait for your organisation's certification.")
    ctx.emit(data, lines)
    return EXIT_OK


async def cmd_logout(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.account.logout()
    ctx.emit({"logged_out": True}, ["Logged out."])
    return EXIT_OK


async def cmd_whoami(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        me = await client.account.whoami()
    lines = [f"{me.get('login')} — {me.get('kind')} {me.get('account')}"]
    if me.get("org"):
        lines.append(f"organisation {me['org']}")
    lines.append("identity verified" if me.get("identity_verified") else "identity not verified")
    ctx.emit(me, lines)
    return EXIT_OK


async def cmd_sessions(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        if ctx.args.revoke:
            await client.account.revoke_session(ctx.args.revoke)
        items = await client.account.sessions()
    lines = [
        f"{s.get('id')}{' (this one)' if s.get('current') else ''} — "
        f"{s.get('method', '')} {s.get('client', '')}"
        for s in items
    ]
    ctx.emit({"sessions": items}, lines)
    return EXIT_OK


# --- invitations ------------------------------------------------------------------------------
async def cmd_invite(ctx: Ctx) -> int:
    words = list(ctx.args.words)
    if words and words[0] == "verify":
        if len(words) != 2 or not ctx.args.code:
            raise UsageError("usage: invite verify ID --code CODE")
        return await _invite_verify(ctx, words[1])
    if words:
        raise UsageError("usage: invite [--kind KIND] [--team TEAM] | invite verify ID --code CODE")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        kind = ctx.args.kind or ("caseworker" if st.kind == "admin" else "citizen")
        invite = await client.invitations.create(
            kind, team=ctx.args.team, validity_ms=ctx.args.days * 24 * 3600 * 1000
        )
        letter_path = None
        if ctx.args.letter:
            letter_path = await _write_letter(ctx, client, invite.code, kind, invite.expires)
    data = {
        "id": invite.id,
        "kind": invite.kind,
        "team": invite.team,
        "code": invite.formatted,
        "link": invite.link,
        "expires": invite.expires,
        "letter": letter_path,
    }
    lines = [
        f"Invitation {invite.id} ({invite.kind}).",
        f"Activation code: {invite.formatted}",
        f"Link: {invite.link}",
        f"Afterwards check it: postbox-desk invite verify {invite.id} --code {invite.formatted}",
    ]
    if letter_path:
        lines.append(f"Letter written to {letter_path}")
    ctx.emit(data, lines)
    return EXIT_OK


async def _write_letter(ctx: Ctx, client: Client, code: bytes, kind: str, expires: int) -> str:
    st = client.session.state
    org_name, fingerprint = "", None
    if st.org is not None:
        org = await client.orgs.get(st.org)
        names = org.get("names") or {}
        org_name = str(names.get("de") or next(iter(names.values()), ""))
        pinned = st.org_roots.get(st.org)
        fingerprint = certs.org_fingerprint(pinned) if pinned else org.get("fingerprint")
    path = Path(ctx.args.letter)
    try:
        from postbox.mailbox.invitations.letter import Letter, render_letter
    except ImportError:  # pragma: no cover - the server package is always installed with us
        page = _minimal_letter(client.origin, code, org_name, fingerprint)
    else:
        page = render_letter(
            Letter(
                code=code,
                origin=client.origin,
                org_name=org_name,
                kind=kind,
                expires=expires,
                fingerprint=fingerprint,
                language=ctx.args.language,
            )
        )
    write_private_file(path, page.encode("utf-8"))
    return str(path)


def _minimal_letter(origin: str, code: bytes, org_name: str, fingerprint: str | None) -> str:
    import html

    from postbox.crypto.activation import format_code

    grouped = format_code(code)
    e = html.escape
    return (
        f"<!doctype html><meta charset='utf-8'><title>Postbox</title>"
        f"<h1>{e(org_name)}</h1><p>{e(grouped)}</p><p>{e(origin)}/activate#{e(grouped)}</p>"
        f"<p>{e(fingerprint or '')}</p>"
    )


async def _invite_verify(ctx: Ctx, invite_id: str) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        done = await client.invitations.verify(invite_id, ctx.args.code)
    ctx.emit(
        {
            "id": done.id,
            "account": done.account,
            "kind": done.kind,
            "kid": done.identity["kid"],
            "fingerprint": done.fingerprint,
            "verified": True,
        },
        [
            f"The activation of {done.account} ({done.kind}) matches the code.",
            f"Identity fingerprint: {done.fingerprint}",
        ],
    )
    return EXIT_OK


# --- organisation -----------------------------------------------------------------------------
def _root_path(ctx: Ctx, org: str) -> Path:
    given = getattr(ctx.args, "root_file", None)
    return Path(given) if given else ctx.root / ROOTS_FOLDER / f"{org}.json"


async def _load_root(ctx: Ctx, org: str) -> OrgRootKey:
    path = _root_path(ctx, org)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the org root key file {path}: {exc}") from exc
    header = read_root_header(data)
    if header["org"] != org:
        raise UsageError(f"{path} holds the root of another organisation")
    passphrase = ctx.root_passphrase("Passphrase of the org root key file: ")
    return await asyncio.to_thread(open_root_file, data, passphrase)


async def cmd_org_init(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        info = await client.connect()
        st = client.session.state
        if st.kind != "admin" or st.org is None:
            raise UsageError("only an org admin runs org init (log in first)")
        org = await client.orgs.get(st.org)
        if org.get("org_root") is not None:
            raise UsageError("this organisation already has a root key")
        names = org.get("names") or {}
        name = ctx.args.name or str(names.get("de") or next(iter(names.values()), st.org))
        path = _root_path(ctx, st.org)
        if path.exists():
            raise UsageError(f"{path} exists: an org root key file is never overwritten")
        passphrase = ctx.root_passphrase(
            "Choose a passphrase for the org root key file: ", confirm=True
        )
        seed = new_root_seed()
        data = await asyncio.to_thread(
            seal_root_file, seed, org=st.org, name=name, passphrase=passphrase,
            ops=info.ops, mem=info.mem,
        )  # fmt: skip
        write_private_file(path, data)
        root = OrgRootKey(org=st.org, name=name, pk=sign_keypair(seed)[0], seed=seed)
        await client.orgs.register_root(root)
        assert st.account is not None
        certified = await client.orgs.certify(root, st.account)
        await client.orgs.endorse_server(root)
        endorsed = await client.keys.check_endorsement(st.org)
    fingerprint = certs.fingerprint(root.pk)
    ctx.emit(
        {
            "org": root.org,
            "name": name,
            "fingerprint": fingerprint,
            "root_file": str(path),
            "admin": certified.account,
            "admin_kid": certified.kid,
            "server_endorsed": endorsed,
        },
        [
            f"Organisation root key created for {name!r}.",
            f"Fingerprint (print it on letters): {fingerprint}",
            f"Encrypted root key file: {path} — keep it offline and backed up.",
            f"Your identity is now certified as an admin key ({certified.kid}).",
        ],
    )
    return EXIT_OK


async def cmd_org_certify(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        if st.org is None:
            raise UsageError("log in as an org admin first")
        root = await _load_root(ctx, st.org)
        done = await client.orgs.certify(root, ctx.args.account, fingerprint=ctx.args.fingerprint)
    ctx.emit(
        {
            "account": done.account,
            "kid": done.kid,
            "kind": done.kind,
            "fingerprint": done.fingerprint,
        },
        [f"Certified the {done.kind} identity of {done.account} ({done.fingerprint})."],
    )
    return EXIT_OK


async def cmd_org_revoke(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await _keyring(ctx, client)
        results = await client.orgs.revoke(keyring, ctx.args.account, reason=ctx.args.reason)
    ctx.emit(
        {"account": ctx.args.account, "revoked": results},
        [f"Revoked {r['kid']} of {ctx.args.account}." for r in results],
    )
    return EXIT_OK


async def cmd_org_pending(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        pending = await client.orgs.pending()
        verified = dict(client.session.state.verified)
    items = [
        {
            "account": s["cert"]["subject"],
            "kind": s["cert"]["kind"],
            "kid": s["cert"]["kid"],
            "fingerprint": cert_fingerprint(s["cert"]),
            "verified_here": verified.get(s["cert"]["subject"]) == s["cert"]["kid"],
        }
        for s in pending
    ]
    ctx.emit(
        {"pending": items},
        [
            f"{i['account']} {i['kind']} {i['fingerprint']}"
            f"{' (verified by code)' if i['verified_here'] else ''}"
            for i in items
        ]
        or ["Nothing waits for certification."],
    )
    return EXIT_OK


# --- teams ------------------------------------------------------------------------------------
def _names(pairs: Sequence[str]) -> dict[str, str]:
    names = {}
    for pair in pairs:
        lang, sep, text = pair.partition("=")
        if not sep or not lang or not text:
            raise UsageError(f"--name takes LANG=TEXT, not {pair!r}")
        names[lang] = text
    return names


async def cmd_team_create(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        team = await client.orgs.create_team(_names(ctx.args.name), team=ctx.args.id)
    ctx.emit(team, [f"Team {team['team']} created: {team.get('names')}"])
    return EXIT_OK


async def cmd_team_list(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        teams = await client.orgs.teams(ctx.args.org)
    ctx.emit(
        {"teams": teams},
        [
            f"{t.get('team')} {t.get('names')} members={t.get('member_count')}"
            f"{' ROTATION PENDING' if t.get('rotation_pending') else ''}"
            for t in teams
        ]
        or ["No teams."],
    )
    return EXIT_OK


async def cmd_team_show(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        info = await client.teams.info(ctx.args.team)
        data: dict[str, Any] = {
            "team": info.team,
            "org": info.org,
            "names": info.names,
            "members": info.members,
            "rotation_pending": info.rotation_pending,
            "key": None,
        }
        if info.key is not None:
            state = (await client.teams.verified(ctx.args.team)).state
            data["key"] = state.encryption[-1].cert["kid"] if state.encryption else None
            data["members"] = sorted(state.members)
            data["rotation_pending"] = state.rotation_pending
    ctx.emit(data, [f"{k}: {v}" for k, v in data.items()])
    return EXIT_OK


def _exchange_out(ctx: Ctx, kind: str, value: dict[str, Any], next_step: str) -> int:
    path = _write_exchange(ctx, ctx.args.request_out, value)
    data = {kind: value if path is None else path}
    if ctx.json:
        ctx.emit(data, [])
    elif path is None:
        ctx.out.write(json.dumps(value, indent=1, sort_keys=True) + "\n")
        ctx.err.write(next_step + "\n")
    else:
        ctx.out.write(f"Wrote {kind} to {path}.\n{next_step}\n")
    return EXIT_OK


async def cmd_team_init(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await _keyring(ctx, client)
        if ctx.args.approval:
            approval = Approval.from_json(_read_json_file(ctx.args.approval))
            info = await client.teams.install_key(keyring, approval.request, approval)
            ctx.emit(
                {
                    "team": info.team,
                    "members": info.members,
                    "key": info.key and info.key["cert"]["kid"],
                },
                [f"Team key of {info.team} installed; members: {', '.join(info.members)}."],
            )
            return EXIT_OK
        keyring, request = await client.teams.request_key(keyring, ctx.args.team)
    return _exchange_out(
        ctx,
        "request",
        request.to_json(),
        "Ask an org admin to run `postbox-desk team approve REQUEST --out APPROVAL`, then run "
        f"`postbox-desk team init {ctx.args.team} --approval APPROVAL`.",
    )


async def cmd_team_approve(ctx: Ctx) -> int:
    request = TeamRequest.from_json(_read_json_file(ctx.args.request))
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await _keyring(ctx, client)
        approval = await client.teams.approve(keyring, request)
    value = approval.to_json()
    path = _write_exchange(ctx, ctx.args.out, value)
    what = []
    if approval.cert is not None:
        what.append(f"team key {approval.cert['cert']['kid']}")
    if approval.membership is not None:
        what.append(f"{request.op} member {request.member}")
    ctx.emit(
        {"approval": value if path is None else path, "approved": what},
        [f"Approved for team {request.team}: {', '.join(what)}."]
        + ([f"Wrote approval to {path}."] if path else [json.dumps(value, sort_keys=True)]),
    )
    return EXIT_OK


async def cmd_team_add(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        if ctx.args.approval:
            keyring = await _keyring(ctx, client)
            approval = Approval.from_json(_read_json_file(ctx.args.approval))
            info = await client.teams.add_member(
                keyring,
                ctx.args.team,
                ctx.args.account,
                fingerprint=ctx.args.fingerprint,
                approval=approval,
            )
            ctx.emit(
                {"team": info.team, "members": info.members},
                [f"{ctx.args.account} is now a member of {info.team}."],
            )
            return EXIT_OK
        # check the newcomer before anyone signs anything for it
        subject = await client.keys.subject(ctx.args.account)
        if subject.identity is None:
            raise UsageError(f"{ctx.args.account} has no current identity")
        check_fingerprint(
            ctx.args.fingerprint, cert_fingerprint(subject.identity), "the new member's identity"
        )
        info = await client.teams.info(ctx.args.team)
        account = client.session.require_account()
        request = TeamRequest(
            team=info.team, org=info.org, by=account, member=ctx.args.account, op="add"
        )
    return _exchange_out(
        ctx,
        "request",
        request.to_json(),
        "Ask an org admin to run `postbox-desk team approve REQUEST --out APPROVAL`, then run "
        f"`postbox-desk team add {ctx.args.team} {ctx.args.account} --fingerprint "
        f"{ctx.args.fingerprint} --approval APPROVAL`.",
    )


async def cmd_team_remove(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        keyring = await _keyring(ctx, client)
        if st.kind == "admin":
            info = await client.teams.info(ctx.args.team)
            request = TeamRequest(
                team=info.team,
                org=info.org,
                by=keyring.account,
                member=ctx.args.account,
                op="remove",
            )
            approval = await client.teams.approve(keyring, request)
            info = await client.teams.remove_member(ctx.args.team, ctx.args.account, approval)
            ctx.emit(
                {
                    "team": info.team,
                    "members": info.members,
                    "rotation_pending": info.rotation_pending,
                },
                [
                    f"{ctx.args.account} removed from {info.team}.",
                    f"Rotation pending: a member runs `postbox-desk team rotate {info.team}`.",
                ],
            )
            return EXIT_OK
        if ctx.args.approval:
            approval = Approval.from_json(_read_json_file(ctx.args.approval))
            if approval.request.member != ctx.args.account:
                raise UsageError("the approval removes another member")
            info = await client.teams.remove_and_rotate(keyring, approval)
            ctx.emit(
                {
                    "team": info.team,
                    "members": info.members,
                    "rotation_pending": info.rotation_pending,
                },
                [f"{ctx.args.account} removed from {info.team}; the team key was rotated."],
            )
            return EXIT_OK
        keyring, request = await client.teams.request_removal(
            keyring, ctx.args.team, ctx.args.account
        )
    return _exchange_out(
        ctx,
        "request",
        request.to_json(),
        "Ask an org admin to run `postbox-desk team approve REQUEST --out APPROVAL`, then run "
        f"`postbox-desk team remove {ctx.args.team} {ctx.args.account} --approval APPROVAL`.",
    )


async def cmd_team_rotate(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await _keyring(ctx, client)
        if ctx.args.approval:
            approval = Approval.from_json(_read_json_file(ctx.args.approval))
            keyring = await client.teams.open_wraps(keyring, ctx.args.team)
            info = await client.teams.install_key(keyring, approval.request, approval)
            ctx.emit(
                {
                    "team": info.team,
                    "members": info.members,
                    "rotation_pending": info.rotation_pending,
                },
                [f"The key of {info.team} was rotated."],
            )
            return EXIT_OK
        keyring = await client.teams.open_wraps(keyring, ctx.args.team)
        keyring, request = await client.teams.request_key(keyring, ctx.args.team, op_self=False)
    return _exchange_out(
        ctx,
        "request",
        request.to_json(),
        "Ask an org admin to run `postbox-desk team approve REQUEST --out APPROVAL`, then run "
        f"`postbox-desk team rotate {ctx.args.team} --approval APPROVAL`.",
    )


async def cmd_team_open(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await _keyring(ctx, client)
        keyring = await client.teams.open_wraps(keyring, ctx.args.team)
    kids = [k.kid for k in keyring.team_keys(ctx.args.team)]
    ctx.emit({"team": ctx.args.team, "keys": kids}, [f"Keys of {ctx.args.team}: {', '.join(kids)}"])
    return EXIT_OK


# --- keys -------------------------------------------------------------------------------------
async def cmd_keys_verify(ctx: Ctx) -> int:
    async with ctx.client(ctx.login(required=False)) as client:
        await client.connect()
        subject = await client.keys.subject(ctx.args.account)
        state = subject.state
        head = client.session.state.sth
    identity = state.identity
    data: dict[str, Any] = {
        "subject": state.subject,
        "chain": state.kind,
        "events": len(state.events),
        "org": state.org,
        "identity": None if identity is None else identity["kid"],
        "identity_fingerprint": None if identity is None else cert_fingerprint(identity),
        "encryption": state.encryption[-1].cert["kid"] if state.encryption else None,
        "revoked": [r["kid"] for r in state.revocations],
        "members": sorted(state.members) if state.kind == "team" else None,
        "org_fingerprint": None
        if subject.org is None or subject.org.org_root is None
        else certs.org_fingerprint(subject.org.org_root),
        "tree_size": None if head is None else head["size"],
        "verified": True,
    }
    if ctx.args.fingerprint:
        if identity is None:
            raise UsageError("this subject has no identity to compare a fingerprint with")
        check_fingerprint(ctx.args.fingerprint, cert_fingerprint(identity), "the identity")
    lines = [
        f"{state.subject}: {state.kind} chain of {len(state.events)} events verified "
        f"against a tree of {data['tree_size']} leaves.",
    ]
    if identity is not None:
        lines.append(f"identity {identity['kid']} fingerprint {data['identity_fingerprint']}")
    if data["encryption"]:
        lines.append(f"encryption key {data['encryption']}")
    if data["org_fingerprint"]:
        lines.append(f"organisation root fingerprint {data['org_fingerprint']}")
    ctx.emit(data, lines)
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------
Command = Callable[[Ctx], Awaitable[int]]


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
    return parser


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
