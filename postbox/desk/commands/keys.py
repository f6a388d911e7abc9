"""``keys verify``: an account's or a team's keys, verified from the transparency log."""

from __future__ import annotations

from typing import Any

from postbox.client.errors import UsageError
from postbox.client.keys import cert_fingerprint, check_fingerprint
from postbox.crypto import certs
from postbox.desk.context import EXIT_OK, Ctx


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
