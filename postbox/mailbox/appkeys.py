"""Every piece of typed application state, in one place (STYLE.md rule 3).

Features add their service keys here (append-only, one line each).
"""

from __future__ import annotations

from aiohttp import web

from postbox.mailbox.access import TokenVerifier
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)
DB = web.AppKey("db", Database)
TOKENS: web.AppKey[TokenVerifier] = web.AppKey("tokens")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
# --- feature services (append below) ---------------------------------------------------------
