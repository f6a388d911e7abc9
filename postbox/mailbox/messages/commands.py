"""The send request, parsed at the edge into a frozen record.

``POST /api/v1/messages`` carries the canonical wire envelope of PROTOCOL.md §5 as its
whole body (the route reads it with ``read_canonical``, so a body that is not canonical
JSON never gets here) and, for an application that opens a case, ``?procedure=ID&version=N``.
:meth:`SendMessage.of` runs the crypto core's structural checks (``check_wire``: closed
shapes, ``rcpt`` = ``to`` + ``from`` once each and sorted, ``keys`` = ``rcpt``, sizes,
ciphertext length); everything that needs the database or the clock is the service's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from postbox.crypto import shapes
from postbox.crypto.envelope import Wire, check_wire
from postbox.crypto.errors import CryptoError
from postbox.mailbox.errors import BadRequest

QUERY_PARAMETERS: Final = ("procedure", "version")
#: one decimal integer without sign or leading zeros (as the key routes take them)
_DECIMAL: Final = re.compile(r"[1-9][0-9]{0,8}")
MAX_PROCEDURE_VERSION: Final = 2**31 - 1


def malformed_envelope(exc: CryptoError) -> BadRequest:
    return BadRequest(f"envelope: {type(exc).__name__}: {exc}", code="malformed-envelope")


@dataclass(frozen=True)
class SendMessage:
    """One envelope to send, structurally checked, with its exact bytes."""

    wire: Wire
    body: bytes
    procedure: str | None = None
    version: int | None = None

    @property
    def from_id(self) -> str:
        return self.wire["header"]["from"]

    @property
    def message_id(self) -> str:
        return self.wire["header"]["id"]

    @classmethod
    def of(cls, parsed: Any, body: bytes, query: Mapping[str, str] | None = None) -> SendMessage:
        """``parsed``/``body`` from ``read_canonical``; ``query`` the request's query."""
        procedure, version = _procedure(query or {})
        try:
            wire = check_wire(parsed)
        except CryptoError as exc:
            raise malformed_envelope(exc) from exc
        return cls(wire, body, procedure, version)


def _procedure(query: Mapping[str, str]) -> tuple[str | None, int | None]:
    """``procedure`` and ``version`` together or not at all, each at most once."""
    multi = getattr(query, "getall", None)
    for name in query:
        if name not in QUERY_PARAMETERS:
            raise BadRequest(f"unknown query parameter {name!r}", code="unknown-parameter")
        if multi is not None and len(multi(name)) > 1:
            raise BadRequest(f"{name} given more than once", code="invalid-parameter")
    procedure, version = query.get("procedure"), query.get("version")
    if procedure is None and version is None:
        return None, None
    if procedure is None or version is None:
        raise BadRequest("procedure and version go together", code="missing-parameter")
    try:
        shapes.check(shapes.ID, procedure, "procedure")
    except CryptoError as exc:
        raise BadRequest(f"procedure: {exc}", code="invalid-parameter") from exc
    if not _DECIMAL.fullmatch(version) or int(version) > MAX_PROCEDURE_VERSION:
        raise BadRequest("version: a positive decimal integer", code="invalid-parameter")
    return procedure, int(version)
