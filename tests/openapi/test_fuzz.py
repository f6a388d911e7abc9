"""Schemathesis against a live server: no 5xx, every answer as the document says.

The server runs on loopback (SQLite, a frozen clock) in a thread of its own
(``openapi.live``), with a real organisation, team, caseworker and citizens onboarded
through the HTTP API. For every operation of the document, schemathesis runs its coverage
phase (boundary and negative values of every parameter and body member, missing members,
unexpected methods) and a bounded fuzzing phase (positive and negative data), and checks
each answer:

* no 5xx (``not_a_server_error``);
* the status, content type, headers and body are documented for the operation
  (``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``; problem bodies carry the documented problem codes only);
* data that violates the schema is refused with a 4xx (``negative_data_rejection``);
* protected operations refuse missing and invalid tokens (``ignored_auth``), and methods a
  path does not have are 405 (``unsupported_method``).

Protected operations run with a real session: the org admin for ``/orgs``, the
caseworker (a team member) for ``/teams`` and ``/invitations``, a citizen for ``/me`` and
``/keys``; logout and session revocation get a fresh session per case. Path parameters
are drawn from the generated values and from the real ids of that world, so routes are
reached beyond their 404s. Bodies go out as canonical JSON whenever the generated value
allows it, so the canonical routes are fuzzed past their ``non-canonical`` check.

Runtime: about 40 s for ~4,500 requests at 25 examples per operation. For a longer bug
hunt: ``POSTBOX_FUZZ_EXAMPLES=300 pytest -s tests/openapi/test_fuzz.py`` (about 5 min;
``-s`` prints the statuses reached per operation).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from openapi.live import LiveServer, World, fresh_session, onboard_world
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from support.onboard import FakeClock, send

from postbox.crypto.encoding import cj
from postbox.crypto.errors import CryptoError
from postbox.mailbox.openapi.document import b64_pattern, document
from postbox.mailbox.settings import Settings

#: examples per operation in the fuzzing phase (the coverage phase adds its own cases);
#: POSTBOX_FUZZ_EXAMPLES=500 for a long bug hunt
MAX_EXAMPLES = int(os.environ.get("POSTBOX_FUZZ_EXAMPLES", "25"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {
            # a 413 (body over the size limit, e.g. more wraps than allowed) is a refusal too
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415"]
            }
        },
        "request-timeout": 30,
    }
)
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


def canonical_json(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """Canonical JSON where the value allows it (else plain JSON: the server refuses it).

    Raw bytes (schemathesis' malformed payloads) go out as they are.
    """
    if isinstance(value, bytes):
        return value
    try:
        return cj(value)
    except (CryptoError, TypeError, ValueError, RecursionError):
        text = json.dumps(value, ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


schemathesis.serializer("application/json")(canonical_json)


# --- the world the fuzzer names ----------------------------------------------------------------
@dataclasses.dataclass
class Fuzz:
    live: LiveServer
    world: World
    #: "METHOD /path" → status → how often the fuzzer saw it
    seen: defaultdict[str, Counter[int]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )

    def token_for(self, path: str) -> str | None:
        """The session a protected operation runs with (None: a fresh one per case)."""
        w = self.world
        if path in ("/api/v1/auth/logout", "/api/v1/sessions/{id}"):
            return None
        if path.startswith("/api/v1/orgs/"):
            return w.admin.token
        if path.startswith(("/api/v1/teams/", "/api/v1/invitations")):
            return w.caseworker.token
        return w.citizen.token

    def known_values(self) -> dict[str, list[str]]:
        """Real values for path parameters, by name."""
        w = self.world
        people = [w.admin, w.caseworker, w.pending, w.citizen, w.leaver]
        return {
            "org": [w.org],
            "team": [w.team],
            "member": [w.caseworker.id, w.pending.id, w.citizen.id],
            "subject": [w.org, w.team, *(p.id for p in people)],
            "id": [w.invitation],
        }


KNOWN: dict[str, list[str]] = {}
_ID = re.compile(b64_pattern(16)[1:-1])


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Keep the generated values, or (when they are valid ids) swap in real ones."""
    if not path_parameters or not KNOWN:
        return st.just(path_parameters)
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in path_parameters.items():
        real = KNOWN.get(name)
        if real and isinstance(value, str) and _ID.fullmatch(value):
            choices[name] = st.sampled_from([value, *real])
        else:
            choices[name] = st.just(value)
    return st.fixed_dictionaries(choices)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    data = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        data_dir=data / "var",
        db=f"sqlite+aiosqlite:///{data / 'postbox.db'}",
        sqlite_synchronous="NORMAL",
        # the fuzzer sends hundreds of challenges and logins from one address
        login_rate_per_minute=1_000_000,
    ).validate()
    with LiveServer(settings, FakeClock()) as live:
        world = live.run(onboard_world(live.client))
        state = Fuzz(live, world)
        KNOWN.update(state.known_values())
        started = time.monotonic()
        yield state
        KNOWN.clear()
        _report(state, time.monotonic() - started)
        # the server still serves after everything the fuzzer sent
        status, body = live.run(send(live.client, "GET", "/healthz"))
        assert status == 200, body


@schema.parametrize()
def test_fuzz(case: schemathesis.Case[Any], fuzz: Fuzz) -> None:
    token = fuzz.token_for(case.path)
    if document()["paths"][case.path][case.operation.method.lower()].get("security") == []:
        headers: dict[str, str] = {}
    else:
        if token is None:
            token, session_id = fuzz.live.run(fresh_session(fuzz.live.client, fuzz.world.leaver))
            if case.path_parameters and "id" in case.path_parameters:
                case.path_parameters["id"] = _maybe(case.path_parameters["id"], session_id)
        headers = {"Authorization": f"Bearer {token}"}
    response = case.call_and_validate(base_url=fuzz.live.url, headers=headers, checks=CHECKS)
    fuzz.seen[f"{case.operation.method.upper()} {case.path}"][response.status_code] += 1


def _maybe(generated: Any, real: str) -> Any:
    """Many generated valid ids (those starting below "a") become the real session id."""
    if isinstance(generated, str) and _ID.fullmatch(generated) and generated[0] < "a":
        return real
    return generated


OPERATIONS = {
    f"{method.upper()} {path}" for path, item in document()["paths"].items() for method in item
}


def test_the_server_serves_after_the_fuzzing(fuzz: Fuzz) -> None:
    """Runs after test_fuzz in this module: every operation was fuzzed (when test_fuzz ran
    in full), and the server still answers real requests."""
    if len(fuzz.seen) > 1:
        assert set(fuzz.seen) == OPERATIONS
    live, world = fuzz.live, fuzz.world
    status, body = live.run(send(live.client, "GET", "/api/v1/transparency/sth"))
    assert status == 200, body
    status, body = live.run(send(live.client, "GET", "/api/v1/me", who=world.citizen))
    assert status == 200, body
    assert body["account"] == world.citizen.id


def _report(state: Fuzz, seconds: float) -> None:
    """What the fuzzer reached (shown with ``pytest -s``)."""
    total = sum(sum(c.values()) for c in state.seen.values())
    print(f"\nfuzzed {len(state.seen)} operations, {total} requests in {seconds:.1f} s")
    for label in sorted(state.seen):
        counts = ", ".join(f"{s}×{n}" for s, n in sorted(state.seen[label].items()))
        print(f"  {label}: {counts}")
