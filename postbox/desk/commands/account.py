"""Account commands: ``activate``, ``login``, ``logout``, ``whoami``, ``sessions``."""

from __future__ import annotations

from postbox.client.errors import UsageError
from postbox.crypto import certs
from postbox.desk.context import EXIT_OK, Ctx


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
