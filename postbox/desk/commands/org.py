"""Organisation commands (org admins): ``org init``, ``certify``, ``revoke``, ``pending``,
``settings``.

The org root key lives in an encrypted file (``--root-file``, by default in the state
folder's ``org-roots``), opened with its own passphrase (``--root-passphrase-fd``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from postbox.client.errors import UsageError
from postbox.client.keys import cert_fingerprint
from postbox.client.orgs import new_root_seed
from postbox.client.rootfile import OrgRootKey, open_root_file, read_root_header, seal_root_file
from postbox.client.state import write_private_file
from postbox.crypto import certs
from postbox.crypto.primitives import sign_keypair
from postbox.desk.context import EXIT_OK, Ctx, open_keyring
from postbox.desk.progress import printable

ROOTS_FOLDER: Final = "org-roots"


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
        keyring = await open_keyring(ctx, client)
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


async def cmd_org_settings(ctx: Ctx) -> int:
    """Show the organisation's settings; ``--citizens-may-write yes|no`` changes that one."""
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        st = client.session.state
        if st.org is None:
            raise UsageError("this account belongs to no organisation")
        wanted = ctx.args.citizens_may_write
        if wanted is not None:
            if st.kind != "admin":
                raise UsageError("only org admins change the organisation's settings")
            org = await client.orgs.set_citizens_may_write(wanted == "yes", st.org)
        else:
            org = await client.orgs.get(st.org)
    names = org.get("names") or {}
    name = str(names.get("de") or next(iter(names.values()), st.org))
    may_write = bool(org.get("citizens_may_write"))
    ctx.emit(
        {
            "org": org.get("org"),
            "names": names,
            "notification_name": org.get("notification_name"),
            "self_registration": org.get("self_registration"),
            "citizens_may_write": may_write,
            "fingerprint": org.get("fingerprint"),
        },
        [
            f"Organisation {printable(name)} ({org.get('org')})",
            f"Notification name:  {printable(str(org.get('notification_name') or '-'))}",
            f"Self-registration:  {'yes' if org.get('self_registration') else 'no'}",
            "Citizens may write: "
            + ("yes" if may_write else "no (replies in their threads stay possible)"),
            f"Root fingerprint:   {org.get('fingerprint') or '- (run org init)'}",
        ],
    )
    return EXIT_OK
