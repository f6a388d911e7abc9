"""OpenAPI part of cases and procedures: ``/api/v1/cases…``, ``/api/v1/orgs/{org}/case-pattern``
and ``/api/v1/orgs/{org}/procedures…``.

The send path's case problems (:data:`postbox.mailbox.cases.effects.SEND_CODES`) are
documented with ``POST /api/v1/messages`` by the messages part; the codes shared with the
routes here are registered with the same meanings.
"""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import DIGEST_BYTES, MAX_SAFE_INTEGER
from postbox.crypto.envelope import KINDS as MESSAGE_KINDS
from postbox.mailbox.cases import references, transitions
from postbox.mailbox.cases.effects import SEND_CODES
from postbox.mailbox.cases.service import DEFAULT_LIMIT, MAX_LIMIT, MAX_TIMELINE
from postbox.mailbox.openapi.document import (
    b64,
    closed,
    enum,
    integer,
    nullable,
    operation,
    ref,
    register_codes,
)

Json = dict[str, Any]

TAGS: list[Json] = [
    {"name": "cases", "description": "Cases (Vorgänge): status, history, reference numbers"},
    {"name": "procedures", "description": "Signed procedure definitions (forms) of an org"},
]

register_codes(
    {
        "case-not-found": SEND_CODES["case-not-found"],
        "transition-not-allowed": SEND_CODES["transition-not-allowed"],
        "procedure-not-found": SEND_CODES["procedure-not-found"],
        "invalid-filter": "a filter (mailbox, status, limit, before) is malformed or repeated",
        "case-mailbox-not-found": "the mailbox filter names no mailbox the caller acts for",
        "status-by-team-only": "only current members of the case's team change its status",
        "status-unchanged": "the case already has that status",
        "signed-envelope-required": "decided and withdrawn are reached only through a signed "
        "decision or withdrawal envelope",
        "invalid-pattern": "the reference pattern does not follow the syntax",
        "invalid-procedure": "the signed procedure does not verify, is malformed or names "
        "another organisation",
        "procedure-version-exists": "this or a higher version of the procedure is published "
        "(`version` member: the newest)",
    }
)


def _param(name: str, where: str, schema: Json, description: str, required: bool) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }


def _case_param() -> Json:
    return _param("case", "path", ref("Id"), "A case id (another person's is 404)", True)


def _org_param() -> Json:
    return _param("org", "path", ref("Id"), "An organisation id", True)


def schemas() -> dict[str, Json]:
    s: dict[str, Json] = {}
    s["CaseStatus"] = enum(transitions.STATUSES, "A case's status (see the status table)")
    s["CaseRef"] = closed(
        {"from": ref("Id"), "id": ref("Id")}, description="A message, by (from, id)"
    )
    s["Case"] = closed(
        {
            "case": ref("Id"),
            "org": ref("Id"),
            "team": ref("Id"),
            "citizen": ref("Id"),
            "procedure": closed({"id": ref("Id"), "version": integer(1)}),
            "reference": {"type": "string", "maxLength": references.MAX_REFERENCE_CHARS},
            "status": ref("CaseStatus"),
            "opened": ref("CaseRef"),
            "created": ref("Time"),
            "updated": ref("Time"),
        },
        description="A case: one citizen, one team, one procedure, a reference number",
    )
    history = closed(
        {
            "status": ref("CaseStatus"),
            "at": ref("Time"),
            "by": ref("Id"),
            "via": enum((transitions.OPENED_VIA, *transitions.VIAS)),
            "message": nullable(ref("CaseRef")),
            "label": enum(("signed", "server metadata")),
        },
        description="A status change: `signed` if a legally effective signed envelope made "
        "it (application, decision, withdrawal), else `server metadata`",
    )
    timeline = closed(
        {
            "from": ref("Id"),
            "id": ref("Id"),
            "kind": enum(MESSAGE_KINDS),
            "signer": ref("Id"),
            "accepted": ref("Time"),
        },
        description="A message of the case in the caller's mailbox",
    )
    case = s["Case"]
    s["CaseDetail"] = closed(
        {
            **case["properties"],
            "history": {"type": "array", "items": history},
            "messages": {"type": "array", "items": timeline, "maxItems": MAX_TIMELINE},
            "moves": {
                "type": "array",
                "items": ref("CaseStatus"),
                "description": "Where the caller may move the case with POST …/status",
            },
        },
        description="A case with its history and timeline",
    )
    s["CaseList"] = closed(
        {
            "cases": {"type": "array", "items": ref("Case"), "maxItems": MAX_LIMIT},
            "next": nullable(
                {
                    "type": "string",
                    "pattern": "^[1-9][0-9]{0,15}$",
                    "description": "The `before` of the next page",
                }
            ),
        }
    )
    s["SetCaseStatus"] = closed({"status": ref("CaseStatus")})
    pattern = {
        "type": "string",
        # no minLength: the pattern's `+` already needs a character, and minLength together
        # with maxLength and pattern makes schemathesis' generator very slow
        "maxLength": references.MAX_PATTERN_CHARS,
        "pattern": references.PATTERN_REGEX,
        "description": "Literal `A-Z a-z 0-9 - / . _` and space, `{year}`, `{yy}`, and exactly "
        "one `{seq}` or `{seq:N}` (N = 1…12 digits)",
    }
    s["SetCasePattern"] = closed({"pattern": pattern})
    s["CasePattern"] = closed(
        {
            "org": ref("Id"),
            "pattern": pattern,
            "default": {"type": "boolean", "description": "true: the org has set none"},
        }
    )
    s["Procedure"] = closed(
        {
            "v": {"const": 1},
            "org": ref("Id"),
            "id": ref("Id"),
            "version": integer(1),
            "schema": {"type": "object", "description": "A JSON Schema without JSON numbers"},
            "labels": {"type": "object", "description": "Labels by language tag"},
            "documents": {
                "type": "array",
                "maxItems": 50,
                "items": closed(
                    {
                        "name": {"type": "string", "maxLength": 100},
                        "required": {"type": "boolean"},
                        "max_size": integer(0),
                    }
                ),
            },
        },
        description="A procedure definition (PROTOCOL.md §9)",
    )
    s["SignedProcedure"] = closed(
        {"procedure": ref("Procedure"), "sig": ref("Signature"), "by": ref("Kid")},
        description='Signed by an org admin key over `"postbox/v1/procedure" ‖ cj(procedure)`',
    )
    s["ProcedureList"] = closed(
        {"procedures": {"type": "array", "items": ref("SignedProcedure")}},
        description="The newest version of each procedure, as signed",
    )
    s["PublishedProcedure"] = closed(
        {
            "org": ref("Id"),
            "procedure": ref("Id"),
            "version": integer(1),
            "by": ref("Kid"),
            "digest": b64(DIGEST_BYTES, 'form.digest = H("postbox/v1/form" ‖ cj(procedure), 64)'),
            "published": ref("Time"),
        }
    )
    return s


def paths() -> dict[str, Json]:
    p: dict[str, Json] = {}
    p["/api/v1/cases"] = {
        "get": operation(
            "listCases",
            "The caller's cases",
            tag="cases",
            description="A citizen's own cases; a caseworker's or connector's the cases of its "
            "current teams. Newest first; keyset pagination (`before` = the previous page's "
            "`next`). Each filter at most once.",
            parameters=[
                _param(
                    "mailbox",
                    "query",
                    ref("Id"),
                    "Only this mailbox's cases (the caller's own or one of its teams)",
                    False,
                ),
                _param("status", "query", ref("CaseStatus"), "Only cases in this status", False),
                _param(
                    "limit",
                    "query",
                    integer(1, MAX_LIMIT),
                    f"Page size (default {DEFAULT_LIMIT})",
                    False,
                ),
                _param(
                    "before",
                    "query",
                    integer(1, MAX_SAFE_INTEGER),
                    "Cursor: the `next` of the previous page",
                    False,
                ),
            ],
            status=200,
            result="A page of cases",
            schema=ref("CaseList"),
            errors={
                400: ("unknown-parameter", "invalid-filter"),
                404: ("case-mailbox-not-found",),
            },
        )
    }
    p["/api/v1/cases/{case}"] = {
        "get": operation(
            "getCase",
            "A case with its history and timeline",
            tag="cases",
            description="For the case's citizen and the current members of its team; "
            "everybody else gets 404 `case-not-found`. `messages` are the case's messages "
            f"in the caller's mailbox (at most the newest {MAX_TIMELINE}).",
            parameters=[_case_param()],
            path_params=True,
            status=200,
            result="The case",
            schema=ref("CaseDetail"),
            errors={404: ("case-not-found",)},
        )
    }
    p["/api/v1/cases/{case}/status"] = {
        "post": operation(
            "setCaseStatus",
            "Move a case (server metadata)",
            tag="cases",
            description="A current member of the case's team (caseworker or connector) "
            "moves the case along the status table's `status` moves. `decided` and "
            "`withdrawn` come only from signed envelopes.",
            parameters=[_case_param()],
            path_params=True,
            body=ref("SetCaseStatus"),
            status=200,
            result="The case after the change",
            schema=ref("CaseDetail"),
            errors={
                400: ("malformed",),
                403: ("status-by-team-only",),
                404: ("case-not-found",),
                409: ("status-unchanged", "signed-envelope-required", "transition-not-allowed"),
            },
        )
    }
    pattern_errors: dict[int, tuple[str, ...]] = {
        403: ("admin-only",),
        404: ("org-not-found",),
    }
    p["/api/v1/orgs/{org}/case-pattern"] = {
        "get": operation(
            "getCasePattern",
            "The org's reference pattern",
            tag="cases",
            description="Org admins only.",
            parameters=[_org_param()],
            path_params=True,
            status=200,
            result="The pattern",
            schema=ref("CasePattern"),
            errors=pattern_errors,
        ),
        "put": operation(
            "setCasePattern",
            "Set the org's reference pattern",
            tag="cases",
            description="Org admins only. New cases use it; the running number continues.",
            parameters=[_org_param()],
            path_params=True,
            body=ref("SetCasePattern"),
            status=200,
            result="The pattern",
            schema=ref("CasePattern"),
            errors={**pattern_errors, 400: ("malformed", "invalid-pattern")},
        ),
    }
    p["/api/v1/orgs/{org}/procedures"] = {
        "post": operation(
            "publishProcedure",
            "Publish a procedure version",
            tag="procedures",
            description="Org admins only. The body is the signed procedure; `by` must be a "
            "certified, current admin key of this org; the version must be higher than every "
            "published version of the same procedure id. Canonical JSON answer.",
            parameters=[_org_param()],
            path_params=True,
            body=ref("SignedProcedure"),
            canonical=True,
            status=201,
            result="Published",
            schema=ref("PublishedProcedure"),
            errors={
                400: ("invalid-procedure", "unknown-admin-key"),
                403: ("admin-only",),
                404: ("org-not-found",),
                409: ("procedure-version-exists",),
            },
        ),
        "get": operation(
            "listProcedures",
            "The org's procedures",
            tag="procedures",
            description="The newest version of each procedure, signed objects as published. "
            "Clients verify each against the org's admin keys before rendering. Canonical "
            "JSON.",
            public=True,
            parameters=[_org_param()],
            path_params=True,
            status=200,
            result="The procedures",
            schema=ref("ProcedureList"),
            errors={404: ("org-not-found",)},
        ),
    }
    p["/api/v1/orgs/{org}/procedures/{procedure}/{version}"] = {
        "get": operation(
            "getProcedure",
            "One procedure version",
            tag="procedures",
            description="The signed procedure as published. Canonical JSON.",
            public=True,
            parameters=[
                _org_param(),
                _param("procedure", "path", ref("Id"), "The procedure id", True),
                _param("version", "path", integer(1, MAX_SAFE_INTEGER), "The version", True),
            ],
            path_params=True,
            status=200,
            result="The signed procedure",
            schema=ref("SignedProcedure"),
            errors={404: ("org-not-found", "procedure-not-found")},
        )
    }
    return p
