"""Case and procedure commands: ``case list|show|status``, ``decide``, ``procedure
publish|list|show``.

A case (Vorgang) is named by its id or by its reference number (``ABH-2026-000123``).
Its status is server metadata that caseworkers move along the status table, except
``decided`` and ``withdrawn``: those come only from a signed envelope, so ``decide`` sends a
``decision`` in the case's thread (a reply to the application that opened the case, from
the team, to the citizen) with the decision document attached.
"""

from __future__ import annotations

import json
from typing import Any, cast

from postbox.client.cases import STATUSES, Case
from postbox.client.errors import NotFoundError, UsageError
from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import random_bytes
from postbox.crypto.procedures import Procedure
from postbox.desk.commands.mail import (
    MAX_FORM_FILE,
    Desk,
    Handles,
    Ref,
    attachment_paths,
    open_letter,
    org_of_team,
    read_text_file,
    reply_to,
    sent_lines,
    when,
)
from postbox.desk.context import EXIT_OK, Ctx, open_keyring
from postbox.desk.progress import printable


def case_json(case: Case) -> dict[str, Any]:
    return {
        "case": case.id,
        "reference": case.reference,
        "status": case.status,
        "org": case.org,
        "team": case.team,
        "citizen": case.citizen,
        "procedure": case.procedure,
        "procedure_version": case.procedure_version,
        "opened": f"{case.opened[0]}/{case.opened[1]}",
        "created": case.created,
        "updated": case.updated,
        "moves": list(case.moves),
    }


def case_detail_json(case: Case) -> dict[str, Any]:
    return {
        **case_json(case),
        "history": [
            {
                "status": h.status,
                "at": h.at,
                "by": h.by,
                "via": h.via,
                "message": None if h.message is None else f"{h.message[0]}/{h.message[1]}",
                "label": h.label,
            }
            for h in case.history
        ],
        "messages": [
            {"ref": f"{f}/{i}", "kind": k, "signer": s, "accepted": a}
            for f, i, k, s, a in case.messages
        ],
    }


async def find_case(desk: Desk, text: str) -> Case:
    """A case by id, or by reference number among the caller's cases."""
    client = desk.client
    try:
        return await client.cases.show(text)
    except (NotFoundError, UsageError):
        pass
    async for case in client.cases.list():
        if case.reference == text:
            return await client.cases.show(case.id)
    raise UsageError(f"no case of yours has the id or reference {text!r}")


# --- case list|show|status ------------------------------------------------------------------
async def cmd_case_list(ctx: Ctx) -> int:
    a = ctx.args
    if a.status is not None and a.status not in STATUSES:
        raise UsageError(f"--status is one of {', '.join(STATUSES)}")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        mailbox = await desk.mailbox_arg(a.team) if a.team else None
        page = await client.cases.page(
            mailbox=mailbox, status=a.status, limit=a.limit, before=a.before
        )
        labels = await desk.labels(c.team for c in page.cases)
    rows = [{**case_json(c), "team_label": labels.get(c.team)} for c in page.cases]
    lines = [
        f"{c.reference:<20} {c.status:<15} {when(c.updated):<16} {c.id}  "
        + (f"{labels[c.team]} (team {c.team})" if c.team in labels else f"team {c.team}")
        for c in page.cases
    ] or ["No cases."]
    if page.next:
        lines.append(f"More: postbox-desk case list --before {page.next}")
    ctx.emit({"cases": rows, "next": page.next}, lines)
    return EXIT_OK


def _history_lines(case: Case) -> list[str]:
    lines = []
    for h in case.history:
        via = f" by {h.by}" if h.by else ""
        lines.append(f"  {when(h.at)}  {h.status:<15} {h.label}{via}")
    return lines


async def cmd_case_show(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        case = await find_case(desk, ctx.args.case)
        team = (await desk.labels([case.team])).get(case.team)
        Handles(ctx, client).remember(
            [Ref(f, i, case.team if client.session.state.kind != "citizen" else None)
             for f, i, *_ in case.messages]
        )  # fmt: skip
    lines = [
        f"Case {case.reference} ({case.id})",
        f"Status:    {case.status}",
        f"Team:      {team} (team {case.team})" if team else f"Team:      {case.team}",
        f"Citizen:   {case.citizen}",
        f"Procedure: {case.procedure} version {case.procedure_version}",
        f"Opened:    {when(case.created)} by {case.opened[0]}/{case.opened[1]}",
        "History:",
        *_history_lines(case),
        "Messages:",
        *[f"  {when(a)}  {k:<12} {f}/{i}" for f, i, k, _s, a in case.messages],
    ]
    if case.moves:
        lines.append(f"You may set: {', '.join(case.moves)}")
    ctx.emit({**case_detail_json(case), "team_label": team}, lines)
    return EXIT_OK


async def cmd_case_status(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        desk = Desk(ctx, client)
        case = await find_case(desk, ctx.args.case)
        updated = await client.cases.set_status(case.id, ctx.args.status)
    ctx.emit(
        case_detail_json(updated),
        [
            f"Case {updated.reference}: {case.status} → {updated.status} (server metadata).",
        ],
    )
    return EXIT_OK


async def cmd_case_pattern(ctx: Ctx) -> int:
    """Show or set the organisation's reference number pattern (org admins)."""
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        org = client.session.state.org
        if org is None or client.session.state.kind != "admin":
            raise UsageError("only org admins see and set the case pattern")
        if ctx.args.pattern is not None:
            pattern = await client.cases.set_pattern(org, ctx.args.pattern)
        else:
            pattern = await client.cases.pattern(org)
    ctx.emit({"org": org, "pattern": pattern}, [f"Reference numbers of {org}: {pattern}"])
    return EXIT_OK


# --- decide -------------------------------------------------------------------------------------
async def cmd_decide(ctx: Ctx) -> int:
    """``decide CASE|MESSAGE``: a signed decision in the case's thread."""
    a = ctx.args
    body = read_text_file(a.body_file, "--body-file")
    attach = attachment_paths(a.attach)
    if not attach:
        raise UsageError("a decision carries its document: --attach decision.pdf")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        if st.kind not in ("caseworker",):
            raise UsageError("decisions are signed by caseworkers")
        desk = Desk(ctx, client)
        case: Case | None = None
        try:
            ref = Handles(ctx, client).resolve(a.target)
        except UsageError:
            case = await find_case(desk, a.target)
            ref = Ref(case.opened[0], case.opened[1], case.team)
        letter = await open_letter(desk, ref, a.team)
        if case is None:
            case_id = letter.case
            if case_id is None:
                raise UsageError("this message belongs to no case; decide a case")
            case = await client.cases.show(case_id)
        if letter.mailbox != case.team:
            raise UsageError("decide from the case's team mailbox (--team)")
        subject = a.subject or f"Bescheid {case.reference}"
        data = await reply_to(
            desk, letter, kind="decision", subject=subject, body=body, attach=attach
        )
        data["reference"] = case.reference
        data["case"] = case.id
    ctx.emit(data, sent_lines(data))
    return EXIT_OK


# --- procedures ---------------------------------------------------------------------------------
def _procedure_json(v: Any) -> dict[str, Any]:
    return {
        "org": v.org,
        "id": v.id,
        "version": v.version,
        "by": v.by,
        "digest": b64e(v.digest),
        "title": v.label("title"),
        "documents": v.procedure["documents"],
        "verified": True,
    }


async def cmd_procedure_publish(ctx: Ctx) -> int:
    """Sign and publish a procedure definition (org admins). The file holds ``schema``,
    ``labels`` and ``documents``; ``id`` and ``version`` are optional (a new id; the next
    version of an existing id)."""
    try:
        value = json.loads(read_text_file(ctx.args.file, "procedure file", MAX_FORM_FILE))
    except ValueError as exc:
        raise UsageError(f"{ctx.args.file}: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{ctx.args.file}: expected a JSON object")
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        if st.kind != "admin" or st.org is None:
            raise UsageError("only org admins publish procedures")
        org = st.org
        pid = value.get("id") or b64e(random_bytes(16))
        version = value.get("version")
        if version is None:
            version = 1
            for existing in await client.procedures.list(org):
                if existing.id == pid:
                    version = existing.version + 1
        procedure = {
            "v": 1,
            "org": org,
            "id": pid,
            "version": version,
            "schema": value.get("schema", {}),
            "labels": value.get("labels", {}),
            "documents": value.get("documents", []),
        }
        keyring = await open_keyring(ctx, client)
        published = await client.procedures.publish(keyring, cast(Procedure, procedure))
        verified = await client.procedures.fetch(org, published.id, published.version)
    data = _procedure_json(verified)
    ctx.emit(
        data,
        [
            f"Published procedure {data['id']} version {data['version']}"
            f" ({printable(data['title'] or '')}).",
            f"Form digest: {data['digest']}",
        ],
    )
    return EXIT_OK


async def _org_of(desk: Desk, given: str | None) -> str:
    if given:
        try:  # a team id names its organisation
            return await org_of_team(desk, given)
        except (NotFoundError, UsageError):
            return given
    org = desk.client.session.state.org
    if org is None:
        raise UsageError("which organisation? give --org ORG or --org TEAM")
    return org


async def cmd_procedure_list(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        org = await _org_of(Desk(ctx, client), ctx.args.org)
        items = await client.procedures.list(org)
    rows = [_procedure_json(v) for v in items]
    ctx.emit(
        {"org": org, "procedures": rows},
        [f"{r['id']}  v{r['version']}  {printable(r['title'] or '')} (verified)" for r in rows]
        or ["No procedures published."],
    )
    return EXIT_OK


async def cmd_procedure_show(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        org = await _org_of(Desk(ctx, client), ctx.args.org)
        version = ctx.args.version
        if version is None:
            newest = [v for v in await client.procedures.list(org) if v.id == ctx.args.procedure]
            if not newest:
                raise UsageError(f"{org} publishes no procedure {ctx.args.procedure}")
            version = newest[0].version
        v = await client.procedures.fetch(org, ctx.args.procedure, version)
    data = {**_procedure_json(v), "schema": v.procedure["schema"], "labels": v.procedure["labels"]}
    lines = [
        f"Procedure {v.id} version {v.version} of {v.org} (signed by admin key {v.by}, verified)",
        f"Title: {printable(v.label('title') or '')}",
        "Documents: "
        + ", ".join(
            f"{printable(d['name'])}{' (required)' if d['required'] else ''}"
            for d in v.procedure["documents"]
        ),
        "Form schema:",
        json.dumps(v.procedure["schema"], indent=1, ensure_ascii=False),
    ]
    ctx.emit(data, lines)
    return EXIT_OK


__all__ = [
    "cmd_case_list",
    "cmd_case_pattern",
    "cmd_case_show",
    "cmd_case_status",
    "cmd_decide",
    "cmd_procedure_list",
    "cmd_procedure_publish",
    "cmd_procedure_show",
]
