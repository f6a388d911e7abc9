"""Validators for the closed v1 objects of PROTOCOL.md.

A shape is a function ``(value, path) -> None`` that raises :class:`MalformedObject`
naming the offending path. Objects are closed: every listed member must be present
(``null`` where the protocol marks ``|null``) and no other member is allowed, except in
the free-form values (``form.data``, ``procedure.schema``, ``procedure.labels``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from postbox.crypto.encoding import ID_BYTES, MAX_SAFE_INTEGER, b64d
from postbox.crypto.errors import EncodingError, MalformedObject

Shape = Callable[[Any, str], None]


def check(shape: Shape, value: Any, what: str) -> None:
    """Validate ``value`` against ``shape``; errors name ``what`` and the member path."""
    shape(value, what)


# The last character of unpadded base64url carries 2 (n ≡ 2 mod 3) or 4 (n ≡ 1 mod 3)
# unused bits, which strict decoding requires to be zero.
_LAST_CHAR = {0: "[A-Za-z0-9_-]", 1: "[AQgw]", 2: "[AEIMQUYcgkosw048]"}


def _fixed_b64_pattern(size: int) -> re.Pattern[str]:
    """A pattern matching exactly the strict b64 encodings of ``size`` bytes."""
    chars = -(-size * 4 // 3)
    if size == 0:
        return re.compile("")
    return re.compile(f"[A-Za-z0-9_-]{{{chars - 1}}}{_LAST_CHAR[size % 3]}")


def b64(size: int | None) -> Shape:
    """A b64 string (of ``size`` decoded bytes when given), checked without decoding it."""
    pattern = None if size is None else _fixed_b64_pattern(size)

    def _check(value: Any, path: str) -> None:
        if pattern is not None and isinstance(value, str) and pattern.fullmatch(value):
            return
        try:
            b64d(value, size)  # the slow path names the exact problem
        except EncodingError as exc:
            raise MalformedObject(f"{path}: {exc}") from exc
        if pattern is not None:  # pragma: no cover - the pattern and b64d agree (tested)
            raise MalformedObject(f"{path}: not strict base64url")

    return _check


ID = b64(ID_BYTES)
KID = ID


def integer(lo: int = -MAX_SAFE_INTEGER, hi: int = MAX_SAFE_INTEGER) -> Shape:
    def _check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise MalformedObject(f"{path}: expected an integer in [{lo}, {hi}]")

    return _check


TIME = integer(0)
COUNT = integer(0)


def string(max_bytes: int | None = None) -> Shape:
    def _check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise MalformedObject(f"{path}: expected a string")
        if max_bytes is not None and len(value.encode("utf-8", "surrogatepass")) > max_bytes:
            raise MalformedObject(f"{path}: longer than {max_bytes} bytes")

    return _check


def const(expected: Any) -> Shape:
    def _check(value: Any, path: str) -> None:
        if type(value) is not type(expected) or value != expected:
            raise MalformedObject(f"{path}: expected {expected!r}")

    return _check


def enum(*allowed: str) -> Shape:
    def _check(value: Any, path: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise MalformedObject(f"{path}: expected one of {', '.join(allowed)}")

    return _check


def nullable(inner: Shape) -> Shape:
    def _check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return _check


def array(item: Shape, max_items: int | None = None) -> Shape:
    def _check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise MalformedObject(f"{path}: expected an array")
        if max_items is not None and len(value) > max_items:
            raise MalformedObject(f"{path}: more than {max_items} items")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")

    return _check


def free_object(value: Any, path: str) -> None:
    """A free-form JSON object (its canonical form is checked by ``cj``)."""
    if not isinstance(value, dict):
        raise MalformedObject(f"{path}: expected an object")


def obj(fields: Mapping[str, Shape]) -> Shape:
    """A closed object with exactly these members."""
    names = frozenset(fields)

    def _check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise MalformedObject(f"{path}: expected an object")
        keys = value.keys()
        if keys != names:
            missing = sorted(names - keys)
            unknown = sorted(k for k in keys if k not in names)
            detail = []
            if missing:
                detail.append("missing " + ", ".join(missing))
            if unknown:
                detail.append("unknown " + ", ".join(map(repr, unknown)))
            raise MalformedObject(f"{path}: " + "; ".join(detail))
        for name, shape in fields.items():
            shape(value[name], f"{path}.{name}")

    return _check


def enum_bool() -> Shape:
    def _check(value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise MalformedObject(f"{path}: expected true or false")

    return _check
