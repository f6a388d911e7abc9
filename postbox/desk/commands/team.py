"""Team commands: ``team create|list|show|init|approve|add|remove|rotate|open``.

Team changes need a member and an org admin (see :mod:`postbox.client.teams`): the member
writes a *request* file, the admin signs it (``team approve``) into an *approval* file, and
the member finishes the change with ``--approval``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postbox.client.errors import UsageError
from postbox.client.keys import cert_fingerprint, check_fingerprint
from postbox.client.state import write_private_file
from postbox.client.teams import Approval, TeamInfo, TeamRequest
from postbox.desk.context import EXIT_OK, Ctx, open_keyring


def _read_json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _write_exchange(path: str | None, value: dict[str, Any]) -> str | None:
    """Write a request/approval file (0600) or, without a path, return it for printing."""
    if path is None:
        return None
    write_private_file(Path(path), (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())
    return path


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


def _request_out(ctx: Ctx, request: TeamRequest, then: str) -> int:
    """Hand a member's request to an org admin: write it (``--request-out``) or print it, and
    say what comes next; ``then`` is the command that finishes with the approval."""
    value = request.to_json()
    next_step = (
        "Ask an org admin to run `postbox-desk team approve REQUEST --out APPROVAL`, then run "
        f"`postbox-desk {then} --approval APPROVAL`."
    )
    path = _write_exchange(ctx.args.request_out, value)
    data = {"request": value if path is None else path}
    if ctx.json:
        ctx.emit(data, [])
    elif path is None:
        ctx.out.write(json.dumps(value, indent=1, sort_keys=True) + "\n")
        ctx.err.write(next_step + "\n")
    else:
        ctx.out.write(f"Wrote request to {path}.\n{next_step}\n")
    return EXIT_OK


def _team_state(info: TeamInfo) -> dict[str, Any]:
    return {"team": info.team, "members": info.members, "rotation_pending": info.rotation_pending}


async def cmd_team_init(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await open_keyring(ctx, client)
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
    return _request_out(ctx, request, f"team init {ctx.args.team}")


async def cmd_team_approve(ctx: Ctx) -> int:
    request = TeamRequest.from_json(_read_json_file(ctx.args.request))
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await open_keyring(ctx, client)
        approval = await client.teams.approve(keyring, request)
    value = approval.to_json()
    path = _write_exchange(ctx.args.out, value)
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
            keyring = await open_keyring(ctx, client)
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
    then = f"team add {ctx.args.team} {ctx.args.account} --fingerprint {ctx.args.fingerprint}"
    return _request_out(ctx, request, then)


async def cmd_team_remove(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        keyring = await open_keyring(ctx, client)
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
                _team_state(info),
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
                _team_state(info),
                [f"{ctx.args.account} removed from {info.team}; the team key was rotated."],
            )
            return EXIT_OK
        keyring, request = await client.teams.request_removal(
            keyring, ctx.args.team, ctx.args.account
        )
    return _request_out(ctx, request, f"team remove {ctx.args.team} {ctx.args.account}")


async def cmd_team_rotate(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await open_keyring(ctx, client)
        if ctx.args.approval:
            approval = Approval.from_json(_read_json_file(ctx.args.approval))
            keyring = await client.teams.open_wraps(keyring, ctx.args.team)
            info = await client.teams.install_key(keyring, approval.request, approval)
            ctx.emit(
                _team_state(info),
                [f"The key of {info.team} was rotated."],
            )
            return EXIT_OK
        keyring = await client.teams.open_wraps(keyring, ctx.args.team)
        keyring, request = await client.teams.request_key(keyring, ctx.args.team, op_self=False)
    return _request_out(ctx, request, f"team rotate {ctx.args.team}")


async def cmd_team_open(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        keyring = await open_keyring(ctx, client)
        keyring = await client.teams.open_wraps(keyring, ctx.args.team)
    kids = [k.kid for k in keyring.team_keys(ctx.args.team)]
    ctx.emit({"team": ctx.args.team, "keys": kids}, [f"Keys of {ctx.args.team}: {', '.join(kids)}"])
    return EXIT_OK
