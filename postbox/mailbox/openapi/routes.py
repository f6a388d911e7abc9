"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document, public and briefly cacheable.

The document is static (:func:`postbox.mailbox.openapi.document.document`); it is served as
canonical JSON, encoded once.
"""

from __future__ import annotations

import functools
from typing import Final

from aiohttp import web

from postbox.crypto.encoding import cj
from postbox.mailbox.access import public
from postbox.mailbox.openapi.document import OPENAPI_PATH, document

CACHE_CONTROL: Final = "public, max-age=300"


@functools.cache
def document_bytes() -> bytes:
    """The served bytes: the document as canonical JSON."""
    return cj(document())


@public
async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=document_bytes(),
        content_type="application/json",
        headers={"Cache-Control": CACHE_CONTROL},
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get(OPENAPI_PATH, get_openapi)
