"""The feature modules that describe their own routes in the OpenAPI document.

Each module named in :data:`PARTS` has ``TAGS`` (a list of tag objects), ``schemas()`` and
``paths()`` (dicts merged into the document); it calls
:func:`postbox.mailbox.openapi.document.register_codes` for its problem codes at import
and builds its operations with :func:`~postbox.mailbox.openapi.document.operation`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

#: one line per feature, in the order their tags appear
PARTS: Final[tuple[str, ...]] = (
    "postbox.mailbox.events.openapi",
    "postbox.mailbox.cases.openapi",
    "postbox.mailbox.blobs.openapi",
    "postbox.mailbox.delivery.openapi",
    "postbox.mailbox.messages.openapi",
    "postbox.mailbox.inbox.openapi",
    "postbox.mailbox.cards.openapi",
)


class Part(Protocol):
    TAGS: list[dict[str, Any]]
    schemas: Callable[[], dict[str, Any]]
    paths: Callable[[], dict[str, Any]]


def load_parts() -> list[Part]:
    return [cast(Part, importlib.import_module(name)) for name in PARTS]
