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
# auth feature (accounts, audit log, login and sessions)
from postbox.mailbox.accounts.service import AccountService  # noqa: E402
from postbox.mailbox.audit.service import Audit  # noqa: E402
from postbox.mailbox.auth.service import AuthService  # noqa: E402

ACCOUNTS = web.AppKey("accounts", AccountService)
AUDIT = web.AppKey("audit", Audit)
AUTH = web.AppKey("auth", AuthService)
# keys feature (key directory and transparency log)
from postbox.keys.directory import Directory  # noqa: E402
from postbox.keys.log import KeyLog  # noqa: E402

KEYLOG = web.AppKey("keylog", KeyLog)
DIRECTORY = web.AppKey("directory", Directory)
# orgs feature (organisations, teams, invitations and activation)
from postbox.mailbox.invitations.service import InvitationService  # noqa: E402
from postbox.mailbox.orgs.service import OrgService  # noqa: E402
from postbox.mailbox.teams.service import TeamService  # noqa: E402

ORGS = web.AppKey("orgs", OrgService)
TEAMS = web.AppKey("teams", TeamService)
INVITATIONS = web.AppKey("invitations", InvitationService)
