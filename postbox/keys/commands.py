"""Requests of the key routes, parsed at the edge into frozen records (closed objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from postbox.crypto import shapes
from postbox.crypto.encoding import b64d
from postbox.crypto.errors import CryptoError
from postbox.crypto.logevents import EVENT_TYPES, EventType
from postbox.keys.merkle import HASH_BYTES
from postbox.mailbox.errors import BadRequest

_REQUIRED = frozenset({"type", "body"})
_OPTIONAL = frozenset({"subject", "seq", "prev"})


@dataclass(frozen=True, slots=True)
class PublishKey:
    """``POST /api/v1/keys`` = ``{"type","body"[, "subject"][, "seq","prev"]}``.

    * ``type``: the event type; ``body``: the signed object as served (PROTOCOL.md §7).
    * ``subject`` (optional): whose chain. By default it follows from the body: the
      certificate's subject for ``identity``/``key``, the revocation's subject for
      ``revoke``, the certificate's org for ``admin_key``, the endorsing org for
      ``server_key``. Give it to revoke an admin key in the *org* chain.
    * ``seq`` and ``prev`` (optional, together): compare-and-swap on the chain. The event
      is appended only if it gets exactly this seq and the chain's last leaf hash is
      ``prev`` (b64, ``null`` for seq 0); otherwise 409 ``wrong-seq`` / ``wrong-prev``.
      A client that knows its chain head (its bundle's ``chain``) uses this so that
      nothing it has not seen slips in between.
    """

    type: EventType
    body: Mapping[str, Any]
    subject: str | None = None
    seq: int | None = None
    prev: bytes | None = None

    @classmethod
    def from_json(cls, value: Any) -> PublishKey:
        if not isinstance(value, dict):
            raise BadRequest("expected a JSON object", code="malformed")
        keys = set(value)
        if not keys >= _REQUIRED or keys - _REQUIRED - _OPTIONAL:
            missing = sorted(_REQUIRED - keys)
            unknown = sorted(keys - _REQUIRED - _OPTIONAL)
            raise BadRequest(
                f"missing {missing}, unknown {unknown}" if missing else f"unknown {unknown}",
                code="malformed",
            )
        if ("seq" in keys) != ("prev" in keys):
            raise BadRequest("seq and prev go together", code="malformed")
        try:
            shapes.enum(*EVENT_TYPES)(value["type"], "type")
            shapes.free_object(value["body"], "body")
            if "subject" in keys:
                shapes.ID(value["subject"], "subject")
            prev: bytes | None = None
            if "seq" in keys:
                shapes.COUNT(value["seq"], "seq")
                if value["prev"] is not None:
                    prev = b64d(value["prev"], HASH_BYTES)
        except CryptoError as exc:
            raise BadRequest(f"{type(exc).__name__}: {exc}", code="malformed") from exc
        if "seq" in keys and (value["seq"] == 0) != (prev is None):
            raise BadRequest("prev is null exactly at seq 0", code="malformed")
        return cls(
            type=cast(EventType, value["type"]),
            body=value["body"],
            subject=value.get("subject"),
            seq=value.get("seq"),
            prev=prev,
        )
