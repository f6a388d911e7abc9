"""``recipients [ORG]``: the team mailboxes one may write to in an organisation.

For a citizen, the teams of an organisation that lets citizens write (an organisation that
does not is not found, as an unknown one); for staff, their own organisation's teams. The
names are the server's cards (metadata): the team id is what ``send --to`` takes.
"""

from __future__ import annotations

from postbox.client.errors import UsageError
from postbox.desk.context import EXIT_OK, Ctx
from postbox.desk.progress import printable


async def cmd_recipients(ctx: Ctx) -> int:
    async with ctx.client(ctx.login()) as client:
        await client.connect()
        org = ctx.args.org or client.session.state.org
        if org is None:
            raise UsageError("which organisation? give its id")
        cards = await client.cards.of_org(org)
    rows = [
        {
            "team": c.team,
            "names": c.names,
            "label": c.label(),
            "org": c.org,
            "org_names": c.org_names,
            "citizens_may_write": c.citizens_may_write,
        }
        for c in cards
    ]
    ctx.emit(
        {"org": org, "teams": rows},
        [f"{c.team}  {printable(c.label())}" for c in cards]
        or ["No team mailboxes in this organisation."],
    )
    return EXIT_OK


__all__ = ["cmd_recipients"]
