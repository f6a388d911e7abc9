"""The OpenAPI 3.1 document of the HTTP API v1, written as Python data.

Every route the server registers is described here with its request body (closed JSON
Schemas: ``additionalProperties: false`` wherever the server refuses unknown members, b64
strings with the exact pattern and length of their decoded size), every status it can
answer and, for every problem response, the exact ``type`` URIs (problem codes) that the
route can produce. ``tests/openapi`` checks that the router and this document agree and
fuzzes the live server against it with schemathesis.

Sizes and enumerations come from the modules that enforce them (the crypto core and the
services), so the document cannot silently drift from the checks. Descriptions name the
rules a JSON Schema cannot state (canonical JSON, signatures, who may do what).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final

from postbox import __version__
from postbox.crypto import certs
from postbox.crypto.activation import MAC_BYTES
from postbox.crypto.bundle import KINDS as BUNDLE_KINDS
from postbox.crypto.bundle import MAX_GEN, MAX_MEM, MAX_OPS, MIN_MEM, MIN_OPS
from postbox.crypto.encoding import (
    CHALLENGE_BYTES,
    ID_BYTES,
    KEY_BYTES,
    MAX_SAFE_INTEGER,
    NONCE_BYTES,
    SALT_BYTES,
    SEALED_KEY_BYTES,
    SIGNATURE_BYTES,
)
from postbox.crypto.logevents import EVENT_TYPES
from postbox.crypto.login import METHODS
from postbox.crypto.transparency import MAX_PATH
from postbox.keys.heads import MAX_LEAVES_PAGE
from postbox.keys.merkle import HASH_BYTES
from postbox.mailbox.accounts.service import KINDS as ACCOUNT_KINDS
from postbox.mailbox.accounts.service import MAX_LANGUAGE_CHARS, STAFF_KINDS
from postbox.mailbox.auth.commands import MAX_CLIENT_CHARS, MAX_LOGIN_CHARS
from postbox.mailbox.errors import PROBLEM_BASE
from postbox.mailbox.invitations.service import INVITED_KINDS, MAX_LOGIN_BYTES
from postbox.mailbox.orgs.service import MAX_LANGUAGES, MAX_NAME_BYTES
from postbox.mailbox.teams.service import MAX_WRAPS

Json = dict[str, Any]

OPENAPI_VERSION: Final = "3.1.0"
OPENAPI_PATH: Final = "/api/v1/openapi.json"
JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
#: the default of ``settings.max_json_bytes`` (the live value is in ``GET /api/v1/server``)
DEFAULT_JSON_BYTES: Final = 256 * 1024
#: request ids are 9 random bytes, b64 (see postbox.mailbox.http)
REQUEST_ID_BYTES: Final = 9


# --- small builders ---------------------------------------------------------------------------
def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def closed(
    properties: Mapping[str, Json],
    *,
    optional: Iterable[str] = (),
    description: str | None = None,
) -> Json:
    """A closed object: these members (all required but ``optional``), nothing else."""
    skip = set(optional)
    schema: Json = {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in skip],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


_B64_CHAR: Final = "[A-Za-z0-9_-]"
# The last character of unpadded base64url carries 4 (n ≡ 1 mod 3) or 2 (n ≡ 2 mod 3)
# unused bits, which strict decoding requires to be zero (postbox.crypto.encoding.b64d).
_B64_LAST: Final = {0: _B64_CHAR, 1: "[AQgw]", 2: "[AEIMQUYcgkosw048]"}


def b64_chars(size: int) -> int:
    """Characters of the unpadded base64url encoding of ``size`` bytes."""
    return -(-size * 4 // 3)


def b64_pattern(size: int) -> str:
    """The anchored pattern of exactly the strict b64 encodings of ``size`` bytes."""
    return f"^{_B64_CHAR}{{{b64_chars(size) - 1}}}{_B64_LAST[size % 3]}$"


#: any strict unpadded base64url string (zero trailing bits, no length ≡ 1 mod 4)
ANY_B64_PATTERN: Final = (
    f"^(?:{_B64_CHAR}{{4}})*(?:{_B64_CHAR}{_B64_LAST[1]}|{_B64_CHAR}{{2}}{_B64_LAST[2]})?$"
)


def b64(size: int, description: str) -> Json:
    chars = b64_chars(size)
    return {
        "type": "string",
        "description": f"{description} ({size} bytes, base64url without padding)",
        "pattern": b64_pattern(size),
        "minLength": chars,
        "maxLength": chars,
    }


def integer(minimum: int = 0, maximum: int = MAX_SAFE_INTEGER, description: str = "") -> Json:
    schema: Json = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if description:
        schema["description"] = description
    return schema


def enum(values: Iterable[str], description: str = "") -> Json:
    schema: Json = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return schema


# --- problem codes ----------------------------------------------------------------------------
#: every problem code the API v1 answers, with what it means (the last segment of ``type``)
CODES: Final[dict[str, str]] = {
    # the edge (postbox.mailbox.http, access, the middleware)
    "malformed-json": "the body is not strict JSON (UTF-8, no duplicate names, integers only)",
    "non-canonical": "the body is not canonical JSON (PROTOCOL.md §1)",
    "too-large": "the body is larger than the server's JSON limit",
    "unreadable-body": "the body could not be read (it does not decode under its "
    "Content-Encoding, or the connection cut it short)",
    "unsupported-media-type": "the body was not sent as application/json",
    "unauthorized": "no `Authorization: Bearer <access token>` header",
    "invalid-token": "the access token is not valid",
    "token-expired": "the access token has expired; refresh it",
    "session-ended": "the session was revoked, expired or its account disabled",
    "not-found": "no route matches the URL (e.g. a path parameter with a `/`)",
    "unavailable": "the server is still starting",
    "malformed": "the request object does not have the documented shape",
    # transparency log and key directory
    "unknown-parameter": "a query parameter this route does not take",
    "missing-parameter": "a required query parameter is missing",
    "invalid-parameter": "a query parameter is not one decimal integer in range",
    "index-out-of-range": "index is not smaller than size",
    "beyond-log": "the size or start lies beyond the log",
    "unknown-tree-size": "no tree head was signed for that size",
    "first-after-second": "first exceeds second",
    "empty-range": "start is not smaller than end",
    "invalid-subject": "the subject is not a b64 id of 16 bytes",
    "unknown-subject": "the subject has no event in the log",
    "invalid-event": "the event body does not have the shape of its type",
    "bad-signature": "a signature of the event does not verify",
    "kid-mismatch": "a kid is not derived from its public key",
    "invalid-key": "a public key is not a valid key",
    "certificate-expired": "the certificate has expired",
    "certificate-revoked": "the certificate is revoked",
    "org-certification-missing": "a staff identity lacks the org root's signature",
    "identity-not-linked": "a new identity is not linked to the current one",
    "invalid-certificate": "the certificate does not verify",
    "certificate-from-future": "the certificate is dated in the future",
    "broken-chain": "the event does not continue the subject's chain",
    "kid-in-use": "the key is already certified or logged",
    "identity-pending": "the identity still waits for org certification",
    "chain-unverifiable": "the subject's logged chain no longer verifies",
    "wrong-seq": "the chain's next seq is another (`seq` member)",
    "wrong-prev": "prev is not the chain's last leaf hash",
    "no-chain": "the subject has no chain in the log yet",
    "type-not-allowed": "this event type is not published through this route",
    "not-your-subject": "the caller may not append to this subject's chain",
    # login and sessions
    "invalid-login": "the login name does not normalise (empty, too long, control chars)",
    "login-failed": "login failed (one answer for every reason)",
    "login-delayed": "too many failed logins for this name; wait `retry_after` s",
    "too-many-attempts": "too many attempts from this address; wait `retry_after` s",
    "invalid-refresh-token": "the refresh token is not valid",
    "refresh-reused": "a used refresh token came back; the session is revoked",
    "no-such-session": "no session of the caller has this id",
    "no-bundle": "no such bundle (kinds are pass and recovery)",
    "invalid-bundle": "the bundle is malformed, of another kind or gen",
    "bundle-params-changed": "a pass bundle update changed salt, ops or mem",
    "gen-conflict": "the stored bundle is at another gen (`gen` member)",
    "invalid-auth-pk": "an auth public key is not a valid Ed25519 key",
    "reauth-failed": "the fresh login proof did not verify",
    # organisations, teams, invitations, activation
    "org-not-found": "no such organisation for the caller",
    "admin-only": "only an admin of this organisation may do this",
    "invalid-org-root": "the org root does not verify or names another org",
    "org-root-exists": "the organisation already has a root key",
    "org-root-missing": "register the org root first",
    "invalid-identity": "the identity certificate does not verify or does not fit",
    "account-not-found": "no such account in this organisation",
    "not-pending": "no identity of this organisation waits for that",
    "certificate-mismatch": "the certificate is not for this account, kind or org",
    "team-exists": "the id is already in use",
    "team-not-found": "no such team for the caller",
    "invalid-team-key": "the team certificate does not verify or fit",
    "unknown-admin-key": "not signed by a current, certified admin key of the org",
    "invalid-membership": "the membership does not verify or fit",
    "membership-required": "the first member sends its membership with the key",
    "membership-not-expected": "add members with POST /members",
    "not-eligible": "only active caseworkers and connectors are team members",
    "not-certified": "the account's keys are not certified (yet)",
    "invalid-wrap": "a team wrap does not verify or fit",
    "wraps-incomplete": "the new team key is not wrapped to every member",
    "team-key-exists": "this team key is already registered",
    "team-key-missing": "the team has no key yet",
    "rotation-pending": "rotate the team key before adding members",
    "already-member": "already a member",
    "not-a-member": "the account is not a member of this team",
    "not-the-member": "the first member sets the team key itself",
    "may-not-invite": "the caller may not invite this kind of account",
    "invalid-expiry": "expiry not in the future or more than 90 days ahead",
    "invitation-exists": "this invitation (id or authoriser) exists already",
    "invitation-not-found": "no such invitation (for this code, or of this inviter)",
    "invitation-used": "the activation code has been used",
    "invitation-expired": "the activation code has expired",
    "not-activated": "the invitation has not been activated yet",
    "invalid-encryption": "the encryption certificate does not verify",
    "invalid-account": "the account id, kind or language is not valid",
    "account-exists": "the account id is already in use",
    "login-taken": "the login name is taken",
    "not-staff": "only staff identities wait for org certification",
    "already-certified": "the identity is already org-certified",
    "already-pending": "another identity of this subject is waiting",
    "identity-not-pending": "no identity of this subject waits for certification",
    "registration-closed": "self-registration is not available for this organisation",
}

AUTH_401: Final = ("unauthorized", "invalid-token", "token-expired", "session-ended")
#: what KeyLog.append refuses (postbox.keys.log)
APPEND_400: Final = (
    "invalid-event",
    "bad-signature",
    "kid-mismatch",
    "invalid-key",
    "certificate-expired",
    "certificate-revoked",
    "org-certification-missing",
    "identity-not-linked",
    "invalid-certificate",
    "certificate-from-future",
)
APPEND_409: Final = ("broken-chain", "kid-in-use", "identity-pending", "chain-unverifiable")
QUERY_400: Final = ("missing-parameter", "invalid-parameter", "unknown-parameter")

_STATUS_TITLES: Final = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
    503: "Service unavailable",
}


def register_codes(codes: Mapping[str, str]) -> None:
    """Add a feature's problem codes (a code may be shared only with the same meaning)."""
    for code, text in codes.items():
        if CODES.get(code, text) != text:
            raise ValueError(f"problem code {code!r} registered twice with other meanings")
        CODES[code] = text


def problem_type(code: str) -> str:
    return PROBLEM_BASE + code


def _problem(status: int, codes: Iterable[str]) -> Json:
    listed = sorted(set(codes))
    unknown = [c for c in listed if c not in CODES]
    if unknown:
        raise ValueError(f"undocumented problem codes {unknown}")
    lines = "\n".join(f"- `{c}`: {CODES[c]}" for c in listed)
    schema: Json = {
        "allOf": [ref("RateLimitedProblem" if status == 429 else "Problem")],
        "properties": {
            "status": {"const": status},
            "type": {"enum": [problem_type(c) for c in listed]},
        },
    }
    headers: Json = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    if status == 401:
        headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWWAuthenticate"}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    return {
        "description": f"{_STATUS_TITLES[status]}. Problem codes (`type` = "
        f"`{PROBLEM_BASE}<code>`):\n\n{lines}",
        "headers": headers,
        "content": {PROBLEM_JSON: {"schema": schema}},
    }


def _success(description: str, schema: Json | None) -> Json:
    response: Json = {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
    }
    if schema is not None:
        response["content"] = {JSON: {"schema": schema}}
    return response


def _param(name: str, where: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": where,
        "required": True,
        "description": description,
        "schema": schema,
    }


def _path(name: str, schema: Json, description: str) -> Json:
    return _param(name, "path", schema, description)


def _query(name: str, minimum: int, description: str) -> Json:
    return _param(
        name,
        "query",
        integer(minimum, MAX_SAFE_INTEGER),
        f"{description} One decimal integer (no sign, no leading zeros), given once.",
    )


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    description: str,
    status: int,
    result: str,
    schema: Json | None,
    public: bool = False,
    parameters: Iterable[Json] = (),
    body: Json | None = None,
    canonical: bool = False,
    errors: Mapping[int, Iterable[str]] | None = None,
    path_params: bool = False,
) -> Json:
    """One operation: its success answer and every problem it can answer.

    The edge problems follow from the flags: a body adds 400 ``malformed-json`` or
    ``non-canonical``, 413 and 415; a protected route adds 401; a path parameter adds the
    router's 404 ``not-found`` (a value the route pattern does not match).
    """
    problems: dict[int, set[str]] = {s: set(c) for s, c in (errors or {}).items()}
    if body is not None:
        problems.setdefault(400, set()).add("non-canonical" if canonical else "malformed-json")
        problems[400].add("unreadable-body")
        problems.setdefault(413, set()).add("too-large")
        problems.setdefault(415, set()).add("unsupported-media-type")
    if not public:
        problems.setdefault(401, set()).update(AUTH_401)
    if path_params:
        problems.setdefault(404, set()).add("not-found")
    responses: Json = {str(status): _success(result, schema)}
    for code in sorted(problems):
        responses[str(code)] = _problem(code, problems[code])
    op: Json = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
    }
    if public:
        op["security"] = []
    params = list(parameters)
    if params:
        op["parameters"] = params
    if body is not None:
        note = (
            "The body must be canonical JSON (PROTOCOL.md §1: no insignificant whitespace, "
            "members sorted by UTF-16 code units, integers only, shortest string escapes); "
            "anything else is 400 `non-canonical`."
            if canonical
            else "Strict JSON (UTF-8, no duplicate member names, integers only)."
        )
        op["requestBody"] = {
            "required": True,
            "description": f"{note} At most `limits.json_bytes` bytes (GET /api/v1/server).",
            "content": {JSON: {"schema": body}},
            "x-postbox-canonical": canonical,
        }
    op["responses"] = responses
    return op


# --- schemas ----------------------------------------------------------------------------------
SERVER_TIME: Final = "milliseconds since the Unix epoch"


def _schemas() -> dict[str, Json]:
    s: dict[str, Json] = {}
    # scalars
    s["Id"] = b64(ID_BYTES, "An id: account, organisation, team, invitation, session or kid")
    s["Kid"] = b64(ID_BYTES, "A key id derived from the public key (PROTOCOL.md §3)")
    s["PublicKey"] = b64(KEY_BYTES, "An Ed25519 or X25519 public key")
    s["Signature"] = b64(SIGNATURE_BYTES, "An Ed25519 signature")
    s["Hash"] = b64(HASH_BYTES, "A Merkle tree hash (RFC 9162, BLAKE2b-256)")
    s["B64"] = {
        "type": "string",
        "description": "Bytes as strict base64url without padding",
        "pattern": ANY_B64_PATTERN,
    }
    s["Time"] = integer(0, MAX_SAFE_INTEGER, f"A time in {SERVER_TIME}")
    s["Count"] = integer(0, MAX_SAFE_INTEGER, "A count or sequence number")
    s["Language"] = {
        "type": "string",
        "description": "A language tag like `de`, `en` or `pt-BR`",
        "pattern": "^[a-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}$",
        "maxLength": 3 + 3 * 9,
    }
    s["DisplayName"] = {
        "type": "string",
        "description": f"A display text: not blank, at most {MAX_NAME_BYTES} UTF-8 bytes, "
        "no control characters or line separators",
        "minLength": 1,
        "maxLength": MAX_NAME_BYTES,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$",
    }
    s["Names"] = {
        "type": "object",
        "description": "Display names by language tag",
        "minProperties": 1,
        "maxProperties": MAX_LANGUAGES,
        "propertyNames": ref("Language"),
        "additionalProperties": ref("DisplayName"),
    }
    s["Fingerprint"] = {
        "type": "string",
        "description": "Safety code of a key: 20 bytes as 8 groups of 4 Crockford base32 symbols",
        "pattern": "^[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){7}$",
    }
    s["Path"] = {
        "type": "array",
        "description": "A Merkle audit path, leaf to root",
        "items": ref("Hash"),
        "maxItems": MAX_PATH,
    }
    # signed objects (postbox.crypto.certs)
    s["Cert"] = closed(
        {
            "v": {"const": 1},
            "subject": ref("Id"),
            "kind": enum(certs.KINDS),
            "org": nullable(ref("Id")),
            "use": enum(("sign", "encrypt")),
            "alg": enum(certs.ALGS.values()),
            "kid": ref("Kid"),
            "pk": ref("PublicKey"),
            "created": ref("Time"),
            "expires": nullable(ref("Time")),
        },
        description="A key certificate (PROTOCOL.md §3)",
    )
    s["SignedCert"] = closed(
        {
            "cert": ref("Cert"),
            "sig": ref("Signature"),
            "by": ref("Kid"),
            "org_sig": nullable(ref("Signature")),
            "prev": nullable(ref("Kid")),
            "prev_sig": nullable(ref("Signature")),
        },
        description="A certificate as served: its signature by `by`, the org root's "
        "certification (staff identities), and the link to the previous identity (rotations)",
    )
    s["OrgRoot"] = closed(
        {
            "v": {"const": 1},
            "org": ref("Id"),
            "name": {"type": "string", "maxLength": certs.MAX_NAME_BYTES},
            "pk": ref("PublicKey"),
            "created": ref("Time"),
        },
        description="An organisation's root key",
    )
    s["SignedOrgRoot"] = closed(
        {"org_root": ref("OrgRoot"), "sig": ref("Signature")},
        description="A self-signed org root",
    )
    s["Revocation"] = closed(
        {
            "v": {"const": 1},
            "subject": ref("Id"),
            "kid": ref("Kid"),
            "at": ref("Time"),
            "reason": enum(("superseded", "compromised", "left")),
        }
    )
    s["SignedRevocation"] = closed(
        {"revoke": ref("Revocation"), "sig": ref("Signature"), "by": ref("Kid")}
    )
    s["TeamWrap"] = closed(
        {
            "v": {"const": 1},
            "team": ref("Id"),
            "team_kid": ref("Kid"),
            "member": ref("Id"),
            "member_kid": ref("Kid"),
            "by": ref("Id"),
            "sealed": b64(SEALED_KEY_BYTES, "The team secret key sealed to the member"),
        }
    )
    s["SignedTeamWrap"] = closed(
        {"team_wrap": ref("TeamWrap"), "sig": ref("Signature"), "by_kid": ref("Kid")},
        description="A team key wrapped to a member, signed by the member who made it",
    )
    s["Membership"] = closed(
        {"v": {"const": 1}, "team": ref("Id"), "member": ref("Id"), "at": ref("Time")}
    )
    s["SignedMembership"] = closed(
        {"membership": ref("Membership"), "sig": ref("Signature"), "by": ref("Kid")},
        description="A team membership (added or removed), signed by an org admin key",
    )
    s["ServerKey"] = closed(
        {
            "v": {"const": 1},
            "log_pk": ref("PublicKey"),
            "receipt_pk": ref("PublicKey"),
            "created": ref("Time"),
        }
    )
    s["SignedServerKey"] = closed(
        {
            "server_key": ref("ServerKey"),
            "org": nullable(ref("Id")),
            "sig": nullable(ref("Signature")),
        },
        description="The server's keys, endorsed by an org root (or unendorsed in leaf 0)",
    )
    # bundles (postbox.crypto.bundle)
    bundle_common: Json = {
        "v": {"const": 1},
        "gen": integer(0, MAX_GEN, "Generation, +1 on every update"),
        "nonce": b64(NONCE_BYTES, "XChaCha20-Poly1305 nonce"),
        "ct": ref("B64"),
    }
    s["PassBundle"] = closed(
        {
            "v": bundle_common["v"],
            "kind": {"const": "pass"},
            "gen": bundle_common["gen"],
            "salt": b64(SALT_BYTES, "Argon2id salt"),
            "ops": integer(MIN_OPS, MAX_OPS, "Argon2id opslimit"),
            "mem": integer(MIN_MEM, MAX_MEM, "Argon2id memlimit in bytes"),
            "nonce": bundle_common["nonce"],
            "ct": bundle_common["ct"],
        },
        description="The private keys sealed under the passphrase key (PROTOCOL.md §4)",
    )
    s["RecoveryBundle"] = closed(
        {
            "v": bundle_common["v"],
            "kind": {"const": "recovery"},
            "gen": bundle_common["gen"],
            "salt": {"type": "null"},
            "ops": {"type": "null"},
            "mem": {"type": "null"},
            "nonce": bundle_common["nonce"],
            "ct": bundle_common["ct"],
        },
        description="The private keys sealed under the recovery key",
    )
    s["Bundle"] = {"oneOf": [ref("PassBundle"), ref("RecoveryBundle")]}
    # problems (RFC 9457)
    s["Problem"] = {
        "type": "object",
        "description": "An RFC 9457 problem. `type` ends in a stable code clients match on; "
        "`detail` never holds secrets or whether another account exists.",
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "pattern": "^urn:postbox:problem:[a-z0-9]+(?:-[a-z0-9]+)*$",
            },
            "title": {"type": "string"},
            "status": integer(400, 599),
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request path"},
            "request_id": {
                "type": "string",
                "pattern": b64_pattern(REQUEST_ID_BYTES),
                "description": "Also in the X-Request-Id header; quote it in reports",
            },
            "retry_after": integer(1, MAX_SAFE_INTEGER, "Seconds to wait (429 only)"),
            "gen": integer(0, MAX_GEN, "The stored bundle's gen (`gen-conflict` only)"),
            "seq": integer(0, MAX_SAFE_INTEGER, "The chain's next seq (`wrong-seq` only)"),
        },
        "required": ["type", "title", "status", "detail", "instance", "request_id"],
    }
    s["RateLimitedProblem"] = {
        "allOf": [ref("Problem")],
        "required": ["retry_after"],
    }
    # --- health and server --------------------------------------------------------------------
    s["Health"] = closed({"status": {"const": "ok"}, "version": {"type": "string"}})
    s["ServerInfo"] = closed(
        {
            "origin": {
                "type": "string",
                "description": "The origin clients bind login signatures to",
            },
            "version": {"type": "string"},
            "log_pk": ref("PublicKey"),
            "receipt_pk": ref("PublicKey"),
            "argon2": closed(
                {"ops": integer(MIN_OPS, MAX_OPS), "mem": integer(MIN_MEM, MAX_MEM)},
                description="The current Argon2id defaults for new pass bundles",
            ),
            "limits": closed(
                {
                    "json_bytes": integer(1, MAX_SAFE_INTEGER, "Largest JSON request body"),
                    "message_bytes": integer(1, MAX_SAFE_INTEGER, "Largest message envelope"),
                    "blob_bytes": integer(1, MAX_SAFE_INTEGER, "Largest attachment blob"),
                    "part_bytes": integer(1, MAX_SAFE_INTEGER, "Largest upload part"),
                    "quota_bytes": integer(1, MAX_SAFE_INTEGER, "Blob bytes per account"),
                }
            ),
        },
        description="What clients pin before they log in",
    )
    # --- transparency (PROTOCOL.md §7) --------------------------------------------------------
    s["TreeHead"] = closed(
        {
            "v": {"const": 1},
            "size": integer(1),
            "root": ref("Hash"),
            "ts": ref("Time"),
        }
    )
    s["ServedTreeHead"] = closed(
        {"sth": ref("TreeHead"), "sig": ref("Signature"), "log_key": ref("PublicKey")},
        description="The newest signed tree head and the log key that signed it",
    )
    s["InclusionProof"] = closed(
        {
            "index": ref("Count"),
            "size": integer(1),
            "leaf": ref("B64"),
            "path": ref("Path"),
        }
    )
    s["ConsistencyProof"] = closed({"first": integer(1), "second": integer(1), "path": ref("Path")})
    s["Leaves"] = closed(
        {
            "leaves": {
                "type": "array",
                "items": ref("B64"),
                "maxItems": MAX_LEAVES_PAGE,
                "description": f"Leaves [start, end), at most {MAX_LEAVES_PAGE} and at most up "
                "to the current size: clients page on",
            }
        }
    )
    s["ProvedEvent"] = closed({"index": ref("Count"), "leaf": ref("B64"), "path": ref("Path")})
    s["KeyChain"] = closed(
        {
            "sth": ref("TreeHead"),
            "sig": ref("Signature"),
            "events": {"type": "array", "items": ref("ProvedEvent")},
        },
        description="A subject's whole event chain, each event proved against the tree head",
    )
    event_bodies = {
        "server_key": "SignedServerKey",
        "org_root": "SignedOrgRoot",
        "identity": "SignedCert",
        "key": "SignedCert",
        "admin_key": "SignedCert",
        "revoke": "SignedRevocation",
        "member_add": "SignedMembership",
        "member_remove": "SignedMembership",
    }
    assert set(event_bodies) == set(EVENT_TYPES)
    s["PublishKeyRequest"] = {
        "type": "object",
        "description": "A key event for the caller's own chain (identity rotation, new "
        "encryption key, revocation) or, for org admins, the org's chain (`admin_key`, "
        "`server_key`, `revoke`) and revocations of their staff. `subject` defaults to the "
        "body's subject (the org for admin_key/server_key). `seq` and `prev` (together) make "
        "the append conditional on the chain head; `prev` is null exactly at seq 0. "
        "`org_root`, team keys and memberships are refused here (403 `type-not-allowed`).",
        "properties": {
            "type": enum(EVENT_TYPES),
            "body": {"type": "object"},
            "subject": ref("Id"),
            "seq": ref("Count"),
            "prev": nullable(ref("Hash")),
        },
        "required": ["type", "body"],
        "additionalProperties": False,
        "dependentRequired": {"seq": ["prev"], "prev": ["seq"]},
        "oneOf": [
            {"properties": {"type": {"const": t}, "body": ref(event_bodies[t])}}
            for t in EVENT_TYPES
        ],
    }
    s["Appended"] = closed(
        {"index": ref("Count"), "seq": ref("Count")},
        description="Where the event landed: its leaf index and its seq in the chain",
    )
    # --- auth (PROTOCOL.md §4) ----------------------------------------------------------------
    login = {
        "type": "string",
        "description": f"The login name: at most {MAX_LOGIN_CHARS * 4} UTF-8 bytes as sent, "
        "normalised by the server (trimmed, NFC, domain lower-cased) to at most 254 bytes",
        "minLength": 1,
        "maxLength": MAX_LOGIN_CHARS * 4,
    }
    s["ChallengeRequest"] = closed({"login": login})
    s["ChallengeAnswer"] = closed(
        {
            "salt": b64(
                SALT_BYTES, "The account's Argon2id salt (a stable fake for unknown names)"
            ),
            "ops": integer(MIN_OPS, MAX_OPS),
            "mem": integer(MIN_MEM, MAX_MEM),
            "challenge": b64(CHALLENGE_BYTES, "Single-use challenge for this name"),
        },
        description="Identical in form for known and unknown login names",
    )
    s["LoginRequest"] = closed(
        {
            "login": login,
            "challenge": b64(CHALLENGE_BYTES, "The challenge from POST /auth/challenge"),
            "auth_pk": b64(KEY_BYTES, "The auth public key derived for this method"),
            "signature": b64(SIGNATURE_BYTES, "The login signature (PROTOCOL.md §2 layout)"),
            "method": enum(METHODS),
        }
    )
    token_members: Json = {
        "account": ref("Id"),
        "access_token": {"type": "string", "description": "A JWT (HS256) for `Bearer`"},
        "refresh_token": b64(KEY_BYTES, "Opaque, single-use refresh token"),
        "expires_in": integer(1, MAX_SAFE_INTEGER, "Access token lifetime in seconds"),
    }
    s["LoginGrant"] = closed(
        {
            **token_members,
            "rekey": nullable(
                closed(
                    {"ops": integer(MIN_OPS, MAX_OPS), "mem": integer(MIN_MEM, MAX_MEM)},
                    description="Re-seal the pass bundle at these parameters",
                )
            ),
        }
    )
    s["RefreshGrant"] = closed(token_members)
    s["RefreshRequest"] = closed(
        {
            "refresh_token": {
                "type": "string",
                "maxLength": 256,
                "description": "The refresh token (anything but a live one is 401)",
            }
        }
    )
    s["Session"] = closed(
        {
            "id": ref("Id"),
            "created": ref("Time"),
            "last_seen": ref("Time"),
            "expires": ref("Time"),
            "method": enum(METHODS),
            "client": {"type": "string", "maxLength": MAX_CLIENT_CHARS},
            "current": {"type": "boolean"},
        }
    )
    s["SessionList"] = closed({"sessions": {"type": "array", "items": ref("Session")}})
    s["Me"] = closed(
        {
            "account": ref("Id"),
            "kind": enum(ACCOUNT_KINDS),
            "org": nullable(ref("Id")),
            "login": nullable({"type": "string"}),
            "identity_verified": {"type": "boolean"},
            "language": {"type": "string"},
        }
    )
    s["BundleResponse"] = closed({"bundle": ref("Bundle")})
    s["BundleUpdate"] = closed(
        {
            "bundle": ref("Bundle"),
            "expected_gen": integer(0, MAX_GEN - 1, "The gen the update replaces"),
        },
        description="Compare-and-swap: the new bundle of the path's kind at expected_gen + 1; "
        "a pass bundle keeps its salt, ops and mem",
    )
    s["Gen"] = closed({"gen": integer(1, MAX_GEN)})
    s["PassphraseChange"] = closed(
        {
            "challenge": b64(CHALLENGE_BYTES, "A fresh challenge for the caller's login name"),
            "signature": b64(SIGNATURE_BYTES, "Login signature by signer_pk over that challenge"),
            "method": enum(METHODS),
            "signer_pk": b64(
                KEY_BYTES, "The key that signed: the current pass or recovery auth key"
            ),
            "auth_pk": b64(KEY_BYTES, "The new pass auth key"),
            "bundle": ref("PassBundle"),
            "expected_gen": integer(0, MAX_GEN - 1),
        }
    )
    s["PassphraseChanged"] = closed({"gen": integer(1, MAX_GEN), "revoked_sessions": ref("Count")})
    # --- organisations ------------------------------------------------------------------------
    s["Org"] = closed(
        {
            "org": ref("Id"),
            "names": ref("Names"),
            "notification_name": {"type": "string"},
            "self_registration": {"type": "boolean"},
            "citizens_may_write": {
                "type": "boolean",
                "description": "Citizens may write to the organisation's teams (replies in "
                "their threads always); set with PATCH /api/v1/orgs/{org}",
            },
            "org_root": nullable(ref("SignedOrgRoot")),
            "fingerprint": nullable(ref("Fingerprint")),
            "created": ref("Time"),
        }
    )
    s["RegisterRoot"] = closed({"org_root": ref("SignedOrgRoot")})
    s["PendingList"] = closed(
        {
            "pending": {
                "type": "array",
                "items": ref("SignedCert"),
                "description": "Staff identity certificates waiting for org certification",
            }
        }
    )
    s["CertifyRequest"] = closed(
        {"identity": ref("SignedCert")},
        description="The pending identity with `org_sig` (the org root's signature) added",
    )
    s["Certified"] = closed({"account": ref("Id"), "kid": ref("Kid"), "kind": enum(STAFF_KINDS)})
    # --- teams --------------------------------------------------------------------------------
    s["NewTeam"] = closed(
        {"team": ref("Id"), "names": ref("Names")},
        description="The client chooses the team id (random 16 bytes)",
    )
    s["Team"] = closed(
        {
            "team": ref("Id"),
            "org": ref("Id"),
            "names": ref("Names"),
            "key": nullable(ref("SignedCert")),
            "members": {"type": "array", "items": ref("Id")},
            "rotation_pending": {"type": "boolean"},
        }
    )
    s["TeamSummary"] = closed(
        {
            "team": ref("Id"),
            "org": ref("Id"),
            "names": ref("Names"),
            "key_kid": nullable(ref("Kid")),
            "member_count": ref("Count"),
            "rotation_pending": {"type": "boolean"},
            "created": ref("Time"),
        }
    )
    s["TeamList"] = closed({"teams": {"type": "array", "items": ref("TeamSummary")}})
    s["SetTeamKey"] = closed(
        {
            "cert": ref("SignedCert"),
            "wraps": {"type": "array", "items": ref("SignedTeamWrap"), "maxItems": MAX_WRAPS},
            "membership": nullable(ref("SignedMembership")),
        },
        description="The first member's key (with its own membership and its own wrap), or a "
        "rotation by a current member (membership null; the new key wrapped to every member, "
        "optionally re-wraps of older team keys)",
    )
    s["AddMember"] = closed(
        {
            "member": ref("Id"),
            "membership": ref("SignedMembership"),
            "wrap": ref("SignedTeamWrap"),
        }
    )
    s["RemoveMember"] = closed({"membership": ref("SignedMembership")})
    s["WrapList"] = closed({"wraps": {"type": "array", "items": ref("SignedTeamWrap")}})
    # --- invitations and activation (PROTOCOL.md §9) ------------------------------------------
    s["NewInvitation"] = closed(
        {
            "id": ref("Id"),
            "kind": enum(INVITED_KINDS),
            "team": nullable(ref("Id")),
            "authoriser": b64(KEY_BYTES, "act_auth = H(key=code, 'postbox/v1/act-auth')"),
            "expires": ref("Time"),
        },
        description="Admins invite staff, caseworkers invite citizens; expires within 90 days",
    )
    s["Invitation"] = closed(
        {
            "id": ref("Id"),
            "kind": enum(INVITED_KINDS),
            "org": nullable(ref("Id")),
            "team": nullable(ref("Id")),
            "created": ref("Time"),
            "expires": ref("Time"),
            "used": nullable(ref("Time")),
            "account": nullable(ref("Id")),
            "act_mac": nullable(b64(MAC_BYTES, "The activating client's MAC")),
            "identity": nullable(ref("SignedCert")),
            "verified": nullable(ref("Time")),
        }
    )
    s["ActivationLookup"] = closed(
        {"authoriser": b64(KEY_BYTES, "act_auth derived from the activation code")}
    )
    s["LookedUp"] = closed(
        {
            "kind": enum(INVITED_KINDS),
            "org": ref("Id"),
            "org_name": {"type": "string"},
            "org_names": ref("Names"),
            "org_root": nullable(ref("SignedOrgRoot")),
            "team": nullable(ref("Id")),
            "expires": ref("Time"),
        }
    )
    account_fields: Json = {
        "account": ref("Id"),
        "login": {
            "type": "string",
            "description": f"The chosen login name (at most {MAX_LOGIN_BYTES} UTF-8 bytes)",
            "maxLength": MAX_LOGIN_BYTES,
        },
        "language": {"allOf": [ref("Language")], "maxLength": MAX_LANGUAGE_CHARS},
        "identity": ref("SignedCert"),
        "encryption": ref("SignedCert"),
        "pass_bundle": ref("PassBundle"),
        "recovery_bundle": ref("RecoveryBundle"),
        "auth_pk": b64(KEY_BYTES, "The pass auth public key"),
        "recovery_auth_pk": b64(KEY_BYTES, "The recovery auth public key"),
    }
    s["Activation"] = closed(
        {
            **account_fields,
            "authoriser": b64(KEY_BYTES, "act_auth derived from the activation code"),
            "act_mac": b64(MAC_BYTES, "MAC over the identity certificate under the code"),
        },
        description="Everything a new account needs, stored atomically; the code is "
        "single-use. Staff certificates wait for the org root's certification.",
    )
    s["Registration"] = closed(
        {**account_fields, "org": ref("Id")},
        description="Self-registration of a citizen where the organisation allows it",
    )
    s["Activated"] = closed(
        {"account": ref("Id"), "kind": enum(INVITED_KINDS), "org": nullable(ref("Id"))}
    )
    return s


# --- paths ------------------------------------------------------------------------------------
def _paths() -> dict[str, Json]:
    org_p = _path("org", ref("Id"), "An organisation id (another org's is 404)")
    team_p = _path("team", ref("Id"), "A team id (another org's is 404)")
    p: dict[str, Json] = {}
    p["/healthz"] = {
        "get": operation(
            "getHealth",
            "Readiness",
            tag="meta",
            description="Answers 200 once the server has started (database migrated).",
            public=True,
            status=200,
            result="Ready",
            schema=ref("Health"),
            errors={503: ("unavailable",)},
        )
    }
    p[OPENAPI_PATH] = {
        "get": operation(
            "getOpenApi",
            "This OpenAPI document",
            tag="meta",
            description="The OpenAPI 3.1 description of the API v1 (canonical JSON).",
            public=True,
            status=200,
            result="The document",
            schema={"type": "object", "required": ["openapi"]},
        )
    }
    p["/api/v1/server"] = {
        "get": operation(
            "getServer",
            "Server keys and parameters",
            tag="transparency",
            description="The origin, log key, receipt key, Argon2id defaults and limits.",
            public=True,
            status=200,
            result="Server information",
            schema=ref("ServerInfo"),
        )
    }
    p["/api/v1/transparency/sth"] = {
        "get": operation(
            "getTreeHead",
            "Newest signed tree head",
            tag="transparency",
            description="Signed now if the log grew or the newest head is older than the "
            "tree-head interval. Takes no query parameters. Canonical JSON.",
            public=True,
            status=200,
            result="The tree head",
            schema=ref("ServedTreeHead"),
            errors={400: ("unknown-parameter",)},
        )
    }
    p["/api/v1/transparency/inclusion"] = {
        "get": operation(
            "getInclusionProof",
            "Inclusion proof",
            tag="transparency",
            description="Leaf `index` in the tree of `size` leaves (the current size or any "
            "size a head was signed for). Canonical JSON.",
            public=True,
            parameters=[
                _query("index", 0, "Leaf index, smaller than size."),
                _query("size", 1, "Tree size."),
            ],
            status=200,
            result="The leaf and its audit path",
            schema=ref("InclusionProof"),
            errors={
                400: (*QUERY_400, "index-out-of-range", "beyond-log"),
                404: ("unknown-tree-size",),
            },
        )
    }
    p["/api/v1/transparency/consistency"] = {
        "get": operation(
            "getConsistencyProof",
            "Consistency proof",
            tag="transparency",
            description="Between two tree sizes (each the current size or a signed one). "
            "Canonical JSON.",
            public=True,
            parameters=[
                _query("first", 1, "The older size."),
                _query("second", 1, "The newer size."),
            ],
            status=200,
            result="The consistency path",
            schema=ref("ConsistencyProof"),
            errors={
                400: (*QUERY_400, "first-after-second", "beyond-log"),
                404: ("unknown-tree-size",),
            },
        )
    }
    p["/api/v1/transparency/leaves"] = {
        "get": operation(
            "getLeaves",
            "Raw leaves",
            tag="transparency",
            description=f"Leaves [start, end), at most {MAX_LEAVES_PAGE} per call and never "
            "beyond the current size. Canonical JSON.",
            public=True,
            parameters=[
                _query("start", 0, "First leaf index."),
                _query("end", 0, "End (exclusive)."),
            ],
            status=200,
            result="The leaves",
            schema=ref("Leaves"),
            errors={400: (*QUERY_400, "empty-range", "beyond-log")},
        )
    }
    p["/api/v1/keys/{subject}"] = {
        "get": operation(
            "getKeys",
            "A subject's proved key chain",
            tag="transparency",
            description="Every event of the subject's chain with its inclusion proof against "
            "the newest tree head. Takes no query parameters. Canonical JSON.",
            public=True,
            parameters=[_path("subject", ref("Id"), "Account, organisation or team id")],
            path_params=True,
            status=200,
            result="The chain",
            schema=ref("KeyChain"),
            errors={400: ("unknown-parameter", "invalid-subject"), 404: ("unknown-subject",)},
        )
    }
    p["/api/v1/keys"] = {
        "post": operation(
            "publishKeyEvent",
            "Append a key event",
            tag="keys",
            description="Appends the event after verifying its signatures and chain "
            "(PROTOCOL.md §7). Canonical JSON answer.",
            body=ref("PublishKeyRequest"),
            canonical=True,
            status=201,
            result="Appended",
            schema=ref("Appended"),
            errors={
                400: ("malformed", *APPEND_400),
                403: ("type-not-allowed", "not-your-subject"),
                409: (*APPEND_409, "wrong-seq", "wrong-prev", "no-chain"),
            },
        )
    }
    # --- auth ---------------------------------------------------------------------------------
    p["/api/v1/auth/challenge"] = {
        "post": operation(
            "createChallenge",
            "Login challenge",
            tag="auth",
            description="Salt and Argon2id parameters for the name (a stable fake for unknown "
            "names: the answer does not tell whether the name exists) and a single-use "
            "challenge valid for at most 120 s.",
            public=True,
            body=ref("ChallengeRequest"),
            status=200,
            result="The challenge",
            schema=ref("ChallengeAnswer"),
            errors={400: ("malformed", "invalid-login"), 429: ("too-many-attempts",)},
        )
    }
    p["/api/v1/auth/login"] = {
        "post": operation(
            "login",
            "Log in",
            tag="auth",
            description="The challenge signed with the auth key derived from the passphrase "
            "(method `pass`) or the recovery key (`recovery`), bound to the server's origin. "
            "Every failure is the same 401 `login-failed`; failures delay the name "
            "exponentially (429 `login-delayed`, never a lockout).",
            public=True,
            body=ref("LoginRequest"),
            status=200,
            result="A new session",
            schema=ref("LoginGrant"),
            errors={
                400: ("malformed", "invalid-login"),
                401: ("login-failed",),
                429: ("login-delayed", "too-many-attempts"),
            },
        )
    }
    p["/api/v1/auth/refresh"] = {
        "post": operation(
            "refreshSession",
            "Refresh the access token",
            tag="auth",
            description="Rotates the refresh token; a used one coming back revokes the session.",
            public=True,
            body=ref("RefreshRequest"),
            status=200,
            result="New tokens",
            schema=ref("RefreshGrant"),
            errors={
                400: ("malformed",),
                401: ("invalid-refresh-token", "session-ended", "refresh-reused"),
            },
        )
    }
    p["/api/v1/auth/logout"] = {
        "post": operation(
            "logout",
            "Log out",
            tag="sessions",
            description="Revokes the caller's session at once (every token of it).",
            status=204,
            result="Logged out",
            schema=None,
        )
    }
    p["/api/v1/sessions"] = {
        "get": operation(
            "listSessions",
            "The caller's live sessions",
            tag="sessions",
            description="Live sessions of the caller's account; `current` marks this one.",
            status=200,
            result="Sessions",
            schema=ref("SessionList"),
        )
    }
    p["/api/v1/sessions/{id}"] = {
        "delete": operation(
            "revokeSession",
            "Revoke a session",
            tag="sessions",
            description="Revokes one of the caller's sessions; other accounts' are 404.",
            parameters=[_path("id", ref("Id"), "Session id")],
            path_params=True,
            status=204,
            result="Revoked",
            schema=None,
            errors={404: ("no-such-session",)},
        )
    }
    p["/api/v1/me"] = {
        "get": operation(
            "getMe",
            "The caller's account",
            tag="me",
            description="Account id, kind, organisation, login name and verification state.",
            status=200,
            result="The account",
            schema=ref("Me"),
        )
    }
    kind_p = _path("kind", enum(BUNDLE_KINDS), "Bundle kind (anything else is 404)")
    p["/api/v1/me/bundles/{kind}"] = {
        "get": operation(
            "getBundle",
            "A bundle of the caller",
            tag="me",
            description="The sealed private keys; served only to an authenticated session.",
            parameters=[kind_p],
            path_params=True,
            status=200,
            result="The bundle",
            schema=ref("BundleResponse"),
            errors={404: ("no-bundle",)},
        ),
        "put": operation(
            "putBundle",
            "Replace a bundle (compare-and-swap)",
            tag="me",
            description="Stores the new bundle if the stored one is at `expected_gen`; "
            "otherwise 409 with the stored `gen`.",
            parameters=[kind_p],
            path_params=True,
            body=ref("BundleUpdate"),
            canonical=True,
            status=200,
            result="The new gen",
            schema=ref("Gen"),
            errors={
                400: ("malformed", "invalid-bundle", "bundle-params-changed"),
                404: ("no-bundle",),
                409: ("gen-conflict",),
            },
        ),
    }
    p["/api/v1/me/passphrase"] = {
        "post": operation(
            "changePassphrase",
            "Change the passphrase",
            tag="me",
            description="A fresh login proof for the caller's own name plus the new auth key "
            "and pass bundle, in one transaction; every other session is revoked. Failed "
            "proofs count towards the account's login delay.",
            body=ref("PassphraseChange"),
            canonical=True,
            status=200,
            result="Changed",
            schema=ref("PassphraseChanged"),
            errors={
                400: ("malformed", "invalid-bundle", "invalid-auth-pk"),
                403: ("reauth-failed",),
                409: ("gen-conflict",),
                429: ("login-delayed", "too-many-attempts"),
            },
        )
    }
    # --- organisations ------------------------------------------------------------------------
    p["/api/v1/orgs/{org}"] = {
        "get": operation(
            "getOrg",
            "An organisation",
            tag="orgs",
            description="Visible to the accounts of the organisation; 404 for everyone else.",
            parameters=[org_p],
            path_params=True,
            status=200,
            result="The organisation",
            schema=ref("Org"),
            errors={404: ("org-not-found",)},
        )
    }
    p["/api/v1/orgs/{org}/root"] = {
        "post": operation(
            "registerOrgRoot",
            "Register the org root key",
            tag="orgs",
            description="Once per organisation, by an org admin; logged as the first event of "
            "the org's chain.",
            parameters=[org_p],
            path_params=True,
            body=ref("RegisterRoot"),
            canonical=True,
            status=201,
            result="The organisation with its root",
            schema=ref("Org"),
            errors={
                400: ("malformed", "invalid-org-root", *APPEND_400),
                403: ("admin-only",),
                404: ("org-not-found",),
                409: ("org-root-exists", *APPEND_409),
            },
        )
    }
    p["/api/v1/orgs/{org}/pending"] = {
        "get": operation(
            "listPendingIdentities",
            "Staff identities awaiting certification",
            tag="orgs",
            description="For org admins.",
            parameters=[org_p],
            path_params=True,
            status=200,
            result="Pending identities",
            schema=ref("PendingList"),
            errors={403: ("admin-only",), 404: ("org-not-found",)},
        )
    }
    p["/api/v1/orgs/{org}/certify"] = {
        "post": operation(
            "certifyIdentity",
            "Certify a staff identity",
            tag="orgs",
            description="Logs a pending staff identity now carrying the org root's signature, "
            "with the encryption keys that waited for it; admin identities also become admin "
            "keys of the org chain.",
            parameters=[org_p],
            path_params=True,
            body=ref("CertifyRequest"),
            canonical=True,
            status=201,
            result="Certified",
            schema=ref("Certified"),
            errors={
                400: (
                    "malformed",
                    "invalid-identity",
                    "certificate-mismatch",
                    *APPEND_400,
                ),
                403: ("admin-only",),
                404: ("org-not-found", "account-not-found", "not-pending"),
                409: ("org-root-missing", *APPEND_409),
            },
        )
    }
    p["/api/v1/orgs/{org}/teams"] = {
        "post": operation(
            "createTeam",
            "Create a team mailbox",
            tag="teams",
            description="By an org admin.",
            parameters=[org_p],
            path_params=True,
            body=ref("NewTeam"),
            status=201,
            result="The team",
            schema=ref("Team"),
            errors={
                400: ("malformed",),
                403: ("admin-only",),
                404: ("org-not-found",),
                409: ("team-exists",),
            },
        ),
        "get": operation(
            "listTeams",
            "The organisation's teams",
            tag="teams",
            description="For staff of the organisation.",
            parameters=[org_p],
            path_params=True,
            status=200,
            result="Teams",
            schema=ref("TeamList"),
            errors={404: ("org-not-found",)},
        ),
    }
    # --- teams --------------------------------------------------------------------------------
    p["/api/v1/teams/{team}"] = {
        "get": operation(
            "getTeam",
            "A team",
            tag="teams",
            description="Its certified key, members and whether a rotation is pending.",
            parameters=[team_p],
            path_params=True,
            status=200,
            result="The team",
            schema=ref("Team"),
            errors={404: ("team-not-found",)},
        )
    }
    p["/api/v1/teams/{team}/key"] = {
        "post": operation(
            "setTeamKey",
            "Create or rotate the team key",
            tag="teams",
            description="The first member's key with its membership and wrap, or a rotation "
            "by a current member with a wrap for every member. The server checks who made "
            "each wrap and for which keys; it cannot open them.",
            parameters=[team_p],
            path_params=True,
            body=ref("SetTeamKey"),
            canonical=True,
            status=201,
            result="The team",
            schema=ref("Team"),
            errors={
                400: (
                    "malformed",
                    "invalid-team-key",
                    "unknown-admin-key",
                    "membership-required",
                    "membership-not-expected",
                    "invalid-membership",
                    "not-eligible",
                    "invalid-wrap",
                    "wraps-incomplete",
                    *APPEND_400,
                ),
                403: ("not-the-member", "not-a-member"),
                404: ("team-not-found", "account-not-found"),
                409: ("team-key-exists", "not-certified", *APPEND_409),
            },
        )
    }
    p["/api/v1/teams/{team}/members"] = {
        "post": operation(
            "addTeamMember",
            "Add a member",
            tag="teams",
            description="A membership signed by an org admin and a wrap of the current team "
            "key for the newcomer, made by a current member.",
            parameters=[team_p],
            path_params=True,
            body=ref("AddMember"),
            canonical=True,
            status=201,
            result="The team",
            schema=ref("Team"),
            errors={
                400: (
                    "malformed",
                    "invalid-membership",
                    "unknown-admin-key",
                    "not-eligible",
                    "invalid-wrap",
                    *APPEND_400,
                ),
                403: ("not-a-member",),
                404: ("team-not-found", "account-not-found"),
                409: (
                    "team-key-missing",
                    "rotation-pending",
                    "already-member",
                    "not-certified",
                    *APPEND_409,
                ),
            },
        )
    }
    p["/api/v1/teams/{team}/members/{member}"] = {
        "delete": operation(
            "removeTeamMember",
            "Remove a member",
            tag="teams",
            description="With a membership signed by an org admin (in the body); the member's "
            "wraps are deleted and the team key must be rotated.",
            parameters=[team_p, _path("member", ref("Id"), "The member's account id")],
            path_params=True,
            body=ref("RemoveMember"),
            canonical=True,
            status=200,
            result="The team (rotation pending)",
            schema=ref("Team"),
            errors={
                400: ("malformed", "invalid-membership", "unknown-admin-key", *APPEND_400),
                403: ("not-a-member",),
                404: ("team-not-found", "not-a-member"),
                409: APPEND_409,
            },
        )
    }
    p["/api/v1/teams/{team}/wraps"] = {
        "get": operation(
            "listMyTeamWraps",
            "The caller's team key wraps",
            tag="teams",
            description="The caller's wraps of every key of the team (current members only).",
            parameters=[team_p],
            path_params=True,
            status=200,
            result="Wraps",
            schema=ref("WrapList"),
            errors={403: ("not-a-member",), 404: ("team-not-found",)},
        )
    }
    # --- invitations and activation -----------------------------------------------------------
    p["/api/v1/invitations"] = {
        "post": operation(
            "createInvitation",
            "Invite an account",
            tag="invitations",
            description="The inviting client made the code and sends only its authoriser. "
            "Org admins invite staff, caseworkers invite citizens.",
            body=ref("NewInvitation"),
            status=201,
            result="The invitation",
            schema=ref("Invitation"),
            errors={
                400: ("malformed", "invalid-expiry"),
                403: ("may-not-invite",),
                404: ("team-not-found",),
                409: ("invitation-exists",),
            },
        )
    }
    inv_p = _path("id", ref("Id"), "Invitation id (only its inviter sees it)")
    p["/api/v1/invitations/{id}"] = {
        "get": operation(
            "getInvitation",
            "An invitation",
            tag="invitations",
            description="For its inviter: whether it was used, by which account, the "
            "activation MAC and the identity certificate to verify it against.",
            parameters=[inv_p],
            path_params=True,
            status=200,
            result="The invitation",
            schema=ref("Invitation"),
            errors={404: ("invitation-not-found",)},
        )
    }
    p["/api/v1/invitations/{id}/verified"] = {
        "post": operation(
            "markInvitationVerified",
            "Mark the activated identity verified",
            tag="invitations",
            description="The inviter checked the activation MAC with the code it holds. "
            "Idempotent. No body.",
            parameters=[inv_p],
            path_params=True,
            status=200,
            result="The invitation",
            schema=ref("Invitation"),
            errors={404: ("invitation-not-found",), 409: ("not-activated",)},
        )
    }
    p["/api/v1/activation/lookup"] = {
        "post": operation(
            "lookupActivation",
            "What an activation code is for",
            tag="activation",
            description="POST keeps the authoriser out of URLs and logs.",
            public=True,
            body=ref("ActivationLookup"),
            status=200,
            result="The invitation's kind and organisation",
            schema=ref("LookedUp"),
            errors={
                400: ("malformed",),
                404: ("invitation-not-found",),
                410: ("invitation-used", "invitation-expired"),
            },
        )
    }
    account_400 = (
        "malformed",
        "invalid-identity",
        "invalid-encryption",
        "certificate-mismatch",
        "invalid-account",
        "invalid-login",
        "invalid-auth-pk",
        "invalid-bundle",
        *APPEND_400,
    )
    account_409 = ("account-exists", "login-taken", *APPEND_409)
    p["/api/v1/activation"] = {
        "post": operation(
            "activate",
            "Activate an account",
            tag="activation",
            description="All or nothing: the account, its keys (logged for citizens, pending "
            "org certification for staff), its bundles and the invitation marked used.",
            public=True,
            body=ref("Activation"),
            canonical=True,
            status=201,
            result="The new account",
            schema=ref("Activated"),
            errors={
                400: (*account_400, "not-staff", "already-certified"),
                404: ("invitation-not-found",),
                409: (*account_409, "already-pending", "identity-not-pending"),
                410: ("invitation-used", "invitation-expired"),
            },
        )
    }
    p["/api/v1/registration"] = {
        "post": operation(
            "register",
            "Self-register a citizen",
            tag="activation",
            description="Where the organisation allows it; the identity stays unverified.",
            public=True,
            body=ref("Registration"),
            canonical=True,
            status=201,
            result="The new account",
            schema=ref("Activated"),
            errors={
                400: account_400,
                404: ("registration-closed",),
                409: account_409,
            },
        )
    }
    return p


def build_document() -> Json:
    """The whole document (a fresh copy each call), with every feature part merged in."""
    # local import: the part modules import this one for its builders
    from postbox.mailbox.openapi.parts import load_parts

    paths = _paths()
    schemas = _schemas()
    tags: list[Json] = []
    for part in load_parts():
        for name, value in part.schemas().items():
            if schemas.setdefault(name, value) != value:
                raise ValueError(f"schema {name!r} defined twice")
        for path, item in part.paths().items():
            if path in paths and set(paths[path]) & set(item):
                raise ValueError(f"path {path!r} documented twice")
            paths.setdefault(path, {}).update(item)
        tags.extend(part.TAGS)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Postbox API",
            "version": __version__,
            "summary": "End-to-end encrypted postbox for public authorities: accounts, "
            "login, key directory and transparency log",
            "description": "JSON over HTTPS. Ids, kids, keys, hashes and signatures are "
            "base64url without padding; times are integer milliseconds since the Unix epoch. "
            "Signed objects follow PROTOCOL.md; request bodies that carry signed or encrypted "
            "objects must be canonical JSON. Every failure is an RFC 9457 problem "
            "(`application/problem+json`) whose `type` ends in a stable code. Routes need "
            "`Authorization: Bearer <access token>` unless marked public. Every response "
            "carries `X-Request-Id`. A URL no route matches is 404 `not-found`; a method a "
            "path does not have is 405 `method-not-allowed` with an `Allow` header.",
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"},
        },
        "servers": [{"url": "/", "description": "This server"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "meta", "description": "Health and this document"},
            {"name": "transparency", "description": "Server keys and the transparency log"},
            {"name": "keys", "description": "Publishing key events"},
            {"name": "auth", "description": "Zero-knowledge login"},
            {"name": "sessions", "description": "Sessions and logout"},
            {"name": "me", "description": "The caller's account and bundles"},
            {"name": "orgs", "description": "Organisations and org certification"},
            {"name": "teams", "description": "Team mailboxes"},
            {"name": "invitations", "description": "Invitations"},
            {"name": "activation", "description": "Activation and self-registration"},
            *tags,
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Access token from POST /api/v1/auth/login or /refresh "
                    f"(15 minutes by default); the refresh token is opaque. JSON bodies are "
                    f"limited to {DEFAULT_JSON_BYTES} bytes by default.",
                }
            },
            "headers": {
                "RequestId": {
                    "description": "The request id (also `request_id` in problems)",
                    "required": True,
                    "schema": {"type": "string", "pattern": b64_pattern(REQUEST_ID_BYTES)},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before trying again",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                },
                "WWWAuthenticate": {
                    "description": '`Bearer realm="postbox"`',
                    "required": True,
                    "schema": {"type": "string"},
                },
            },
        },
    }


@functools.cache
def document() -> Json:
    """The document, built once (lazily: feature parts import this module)."""
    return build_document()
