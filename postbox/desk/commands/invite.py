"""``invite`` (staff invite citizens, admins invite staff) and ``invite verify``."""

from __future__ import annotations

from pathlib import Path

from postbox.client import Client
from postbox.client.errors import UsageError
from postbox.client.state import write_private_file
from postbox.crypto import certs
from postbox.desk.context import EXIT_OK, Ctx


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
