"""The OpenAPI document: valid OpenAPI 3.1, and the same routes as the server's router.

Also: the document is what ``GET /api/v1/openapi.json`` serves (exact canonical bytes),
its security matches the server's default-deny (``@public`` handlers and nothing else),
every problem code the server's source can raise is documented, and the b64 patterns
accept exactly what the server's strict decoder accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator

import postbox
from postbox.crypto import shapes
from postbox.crypto.encoding import b64e, cj, parse_canonical
from postbox.crypto.errors import CryptoError
from postbox.mailbox.access import is_public
from postbox.mailbox.app import create_app
from postbox.mailbox.openapi.document import (
    ANY_B64_PATTERN,
    APPEND_400,
    APPEND_409,
    AUTH_401,
    CODES,
    JSON,
    OPENAPI_PATH,
    PROBLEM_JSON,
    b64_pattern,
    build_document,
    document,
)
from postbox.mailbox.settings import Settings

Client = TestClient[web.Request, web.Application]
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
OCTET_STREAM = "application/octet-stream"
BINARY = {"type": "string", "format": "binary"}
PACKAGE = Path(postbox.__file__).parent


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def router_routes(app: web.Application) -> dict[tuple[str, str], Any]:
    """(method, path template) → handler, without the HEAD twins of GET routes."""
    routes: dict[tuple[str, str], Any] = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        key = (route.method, route.resource.canonical)
        assert key not in routes, f"{key} registered twice"
        routes[key] = route.handler
    return routes


@pytest.fixture
def app(tmp_path: Path) -> web.Application:
    """The app as ``postbox serve`` builds it (routes are registered at construction)."""
    return create_app(Settings(data_dir=tmp_path / "var").validate())


# --- the document itself -------------------------------------------------------------------
def test_document_is_valid_openapi_3_1() -> None:
    assert document()["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document()).validate()


def test_document_is_json_data_and_stable() -> None:
    assert parse_canonical(cj(document())) == document()
    assert build_document() == document()


def test_every_route_is_documented_and_every_operation_exists(app: web.Application) -> None:
    routes = router_routes(app)
    documented = {(m, p) for m, p, _ in operations(document())}
    assert sorted(set(routes) - documented) == [], "routes missing from the document"
    assert sorted(documented - set(routes)) == [], "documented operations the server lacks"
    assert len(documented) == len(routes) >= 36


def test_security_matches_the_servers_default_deny(app: web.Application) -> None:
    routes = router_routes(app)
    assert document()["security"] == [{"bearerAuth": []}]
    for method, path, op in operations(document()):
        documented_public = op.get("security") == []
        assert documented_public == is_public(routes[(method, path)]), (method, path)
        if not documented_public:
            assert "security" not in op, "protected operations use the global requirement"
            assert set(_codes(op, "401")) == set(AUTH_401), (method, path)


def test_operations_are_complete() -> None:
    ids = [op["operationId"] for _, _, op in operations(document())]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for method, path, op in operations(document()):
        where = f"{method} {path}"
        assert op["summary"] and op["description"] and op["tags"], where
        templated = re.findall(r"\{([^}]+)\}", path)
        declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert templated == declared, where
        statuses = sorted(op["responses"])
        assert [s for s in statuses if s < "400"], f"{where}: no success answer"
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(statuses), where
            assert op["requestBody"]["required"] is True, where
            # JSON, or raw bytes (an upload part) as exactly that: an opaque binary string
            content = op["requestBody"]["content"]
            assert list(content) in ([JSON], [OCTET_STREAM]), where
            if OCTET_STREAM in content:
                assert content[OCTET_STREAM]["schema"] == BINARY, where
                assert "unreadable-body" in _codes(op, "400"), where
            else:
                assert isinstance(op["requestBody"]["x-postbox-canonical"], bool), where
        if templated:
            assert "not-found" in _codes(op, "404"), where
        for status, response in op["responses"].items():
            assert "X-Request-Id" in response["headers"], (where, status)
            if status >= "400":
                assert list(response["content"]) == [PROBLEM_JSON], (where, status)
            elif "content" in response:
                assert list(response["content"]) in ([JSON], [OCTET_STREAM]), (where, status)


def _codes(op: dict[str, Any], status: str) -> list[str]:
    """The problem codes an operation documents for a status."""
    response = op["responses"].get(status)
    if response is None:
        return []
    schema = response["content"][PROBLEM_JSON]["schema"]
    types: list[str] = schema["properties"]["type"]["enum"]
    assert schema["properties"]["status"] == {"const": int(status)}
    return [t.rsplit(":", 1)[1] for t in types]


def test_every_documented_code_is_used_and_explained() -> None:
    used = {
        code
        for _, _, op in operations(document())
        for status in op["responses"]
        if status >= "400"
        for code in _codes(op, status)
    }
    assert sorted(set(CODES) - used) == [], "explained but never answered"
    assert used <= set(CODES)


# The server's source names its problem codes as literals: ``code="..."``, and
# ``invalid("<thing>", exc)`` / ``cert_fresh(..., "<thing>")`` for ``invalid-<thing>``.
_CODE_LITERAL = re.compile(r"""code="([a-z0-9-]+)\"""")
_INVALID_THING = re.compile(r"""(?:\binvalid\(|cert_fresh\([^)]*?,\s*)"([a-z0-9-]+)\"""")
#: server codes that no HTTP route can answer (operator CLI only)
CLI_ONLY: frozenset[str] = frozenset()


def test_every_problem_code_in_the_server_is_documented() -> None:
    found: dict[str, str] = {}
    for package in ("keys", "mailbox"):
        for source in sorted((PACKAGE / package).rglob("*.py")):
            if "openapi" in source.parts:
                continue
            text = source.read_text("utf-8")
            for code in _CODE_LITERAL.findall(text):
                found.setdefault(code, str(source))
            for thing in _INVALID_THING.findall(text):
                found.setdefault(f"invalid-{thing}", str(source))
    assert len(found) > 50, "the scan found the server's codes"
    missing = {c: where for c, where in found.items() if c not in CODES and c not in CLI_ONLY}
    assert missing == {}, "problem codes the server can answer but the document omits"


def test_append_refusals_cover_the_key_log() -> None:
    from postbox.keys.log import REFUSAL_CODES

    refused = {code for _, _, code in REFUSAL_CODES}
    assert refused <= set(APPEND_400) | set(APPEND_409)


async def test_served_document_is_exactly_the_document(client: Client) -> None:
    resp = await client.get(OPENAPI_PATH)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert "max-age" in resp.headers["Cache-Control"]
    body = await resp.read()
    assert body == cj(document())
    assert parse_canonical(body) == document()
    # public: no session needed, and a bad token does not matter either
    bad = await client.get(OPENAPI_PATH, headers={"Authorization": "Bearer nonsense"})
    assert bad.status == 200


# --- b64 patterns agree with the server's strict decoder --------------------------------------
B64_SIZES = (9, 16, 24, 32, 64, 80)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=\n "


def _accepts(shape: shapes.Shape, value: str) -> bool:
    try:
        shape(value, "value")
    except CryptoError:
        return False
    return True


def _matches(pattern: str, value: str) -> bool:
    # JSON Schema patterns are ECMA-262: `$` is the very end (Python's `$` allows a "\n")
    assert pattern.startswith("^") and pattern.endswith("$")
    return re.fullmatch(pattern[1:-1], value) is not None


@pytest.mark.parametrize("size", B64_SIZES)
def test_fixed_b64_patterns_match_real_encodings(size: int) -> None:
    for fill in (0, 1, 0x7F, 0xFF):
        assert _matches(b64_pattern(size), b64e(bytes([fill]) * size))
    assert not _matches(b64_pattern(size), b64e(bytes(size + 1)))
    assert not _matches(b64_pattern(size), b64e(bytes(size - 1)))


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from(B64_SIZES),
    data=st.data(),
)
def test_b64_patterns_accept_what_the_server_accepts(size: int, data: st.DataObject) -> None:
    n = -(-size * 4 // 3)
    text = data.draw(
        st.one_of(
            st.binary(min_size=size, max_size=size).map(b64e),
            st.text(_ALPHABET, min_size=n - 1, max_size=n + 1),
            st.binary(min_size=size, max_size=size).map(lambda b: b64e(b)[:-1] + "A"),
        )
    )
    assert _matches(b64_pattern(size), text) == _accepts(shapes.b64(size), text), text
    assert _matches(ANY_B64_PATTERN, text) == _accepts(shapes.b64(None), text), text
