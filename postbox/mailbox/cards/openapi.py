"""OpenAPI part of team mailbox cards and of the organisation setting behind them
(protocol.md §13.5, §13.6)."""

from __future__ import annotations

from typing import Any

from postbox.mailbox.cards.service import IDS, MAX_CARDS
from postbox.mailbox.openapi.document import closed, operation, ref, register_codes

Json = dict[str, Any]

TAGS: list[Json] = [
    {
        "name": "cards",
        "description": "Team mailbox cards: a team's and its organisation's names for the "
        "accounts that may write to it or have written with it",
    }
]

register_codes(
    {
        # the same meanings as the inbox's and the transparency routes'
        "mailbox-not-found": "no such mailbox for the caller",
        "invalid-query": "a query parameter is malformed, out of range or given twice",
    }
)

_WHO = (
    "Staff see their own organisation's teams; a citizen sees the teams of organisations "
    "that let citizens write, and the teams it has exchanged mail with (threads, cases, "
    "messages). Any other id — another organisation's team, an account, nothing at all — "
    "gets the same answer as an unknown one."
)


def schemas() -> dict[str, Json]:
    return {
        "TeamCard": closed(
            {
                "team": ref("Id"),
                "names": ref("Names"),
                "org": ref("Id"),
                "org_names": ref("Names"),
                "citizens_may_write": {
                    "type": "boolean",
                    "description": "The organisation lets citizens write to its teams "
                    "(replies in a citizen's threads are always possible)",
                },
            },
            description="A team mailbox's public card (server metadata, not signed: a "
            "label, never proof of a sender)",
        ),
        "TeamCards": closed(
            {
                "cards": {"type": "array", "items": ref("TeamCard")},
                "unknown": {
                    "type": "array",
                    "items": ref("Id"),
                    "description": "The ids asked for that have no card for the caller",
                },
            },
            description="The cards in the order asked (each id once)",
        ),
        "TeamCardList": closed({"cards": {"type": "array", "items": ref("TeamCard")}}),
        "OrgChange": closed(
            {"citizens_may_write": {"type": "boolean"}},
            description="The organisation's settings to change",
        ),
    }


def _path(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": ref("Id"),
    }


def paths() -> dict[str, Json]:
    org_p = _path("org", "An organisation id (another org's is 404)")
    return {
        "/api/v1/mailboxes/cards": {
            "get": operation(
                "getTeamCards",
                "Cards of several team mailboxes",
                tag="cards",
                description=f"One request for every sender of an inbox page. {_WHO} "
                "Ids without a card for the caller are listed under `unknown`.",
                parameters=[
                    {
                        "name": IDS,
                        "in": "query",
                        "required": True,
                        "description": f"1…{MAX_CARDS} mailbox ids, comma-separated, given "
                        "once (repeats are answered once).",
                        "style": "form",
                        "explode": False,
                        "schema": {
                            "type": "array",
                            "items": ref("Id"),
                            "minItems": 1,
                            "maxItems": MAX_CARDS,
                        },
                    }
                ],
                status=200,
                result="The cards",
                schema=ref("TeamCards"),
                errors={400: ("missing-parameter", "unknown-parameter", "invalid-query")},
            )
        },
        "/api/v1/mailboxes/{mailbox}/card": {
            "get": operation(
                "getTeamCard",
                "A team mailbox's card",
                tag="cards",
                description=_WHO,
                parameters=[_path("mailbox", "A team mailbox id")],
                path_params=True,
                status=200,
                result="The card",
                schema=ref("TeamCard"),
                errors={404: ("mailbox-not-found",)},
            )
        },
        "/api/v1/orgs/{org}/cards": {
            "get": operation(
                "listOrgTeamCards",
                "The organisation's teams one may write to",
                tag="cards",
                description="For a recipient picker. Staff of the organisation get every "
                "team; a citizen gets every team of an organisation that lets citizens "
                "write. For everyone else the organisation does not exist (404).",
                parameters=[org_p],
                path_params=True,
                status=200,
                result="The cards, oldest team first",
                schema=ref("TeamCardList"),
                errors={404: ("org-not-found",)},
            )
        },
        "/api/v1/orgs/{org}": {
            "patch": operation(
                "changeOrg",
                "Change the organisation's settings",
                tag="orgs",
                description="By an org admin; audited (`org.update`). "
                "`citizens_may_write: false` stops new messages from citizens to the "
                "organisation's teams; replies in existing threads stay possible.",
                parameters=[org_p],
                path_params=True,
                body=ref("OrgChange"),
                status=200,
                result="The organisation",
                schema=ref("Org"),
                errors={
                    400: ("malformed",),
                    403: ("admin-only",),
                    404: ("org-not-found",),
                },
            )
        },
    }
