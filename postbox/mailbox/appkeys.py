"""Every piece of typed application state, in one place (STYLE.md rule 3).

Services never import this module (routes and the composition root do), so importing the
service classes here cannot create an import cycle.
"""

from __future__ import annotations

from aiohttp import web

from postbox.keys.directory import Directory
from postbox.keys.log import KeyLog
from postbox.mailbox.access import TokenVerifier
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.audit.service import Audit
from postbox.mailbox.auth.service import AuthService
from postbox.mailbox.background import Background
from postbox.mailbox.blobs.gc import BlobGc
from postbox.mailbox.blobs.service import BlobService
from postbox.mailbox.cards.service import CardService
from postbox.mailbox.cases.service import CaseService
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.delivery.service import DeliveryService
from postbox.mailbox.events.bus import EventBus
from postbox.mailbox.events.service import EventService
from postbox.mailbox.inbox.retention import Collector
from postbox.mailbox.inbox.service import InboxService
from postbox.mailbox.invitations.service import InvitationService
from postbox.mailbox.messages.service import MessageService
from postbox.mailbox.notifications.service import NotificationService
from postbox.mailbox.orgs.service import OrgService
from postbox.mailbox.procedures.service import ProcedureService
from postbox.mailbox.secrets import Secrets
from postbox.mailbox.settings import Settings
from postbox.mailbox.teams.service import TeamService

# --- core ------------------------------------------------------------------------------------
SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)
DB = web.AppKey("db", Database)
TOKENS: web.AppKey[TokenVerifier] = web.AppKey("tokens")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
BACKGROUND = web.AppKey("background", Background)
# --- keys: key directory and transparency log -------------------------------------------------
KEYLOG = web.AppKey("keylog", KeyLog)
DIRECTORY = web.AppKey("directory", Directory)
# --- auth: accounts, audit log, login and sessions ---------------------------------------------
ACCOUNTS = web.AppKey("accounts", AccountService)
AUDIT = web.AppKey("audit", Audit)
AUTH = web.AppKey("auth", AuthService)
# --- orgs: organisations, teams, invitations and activation ------------------------------------
ORGS = web.AppKey("orgs", OrgService)
TEAMS = web.AppKey("teams", TeamService)
INVITATIONS = web.AppKey("invitations", InvitationService)
# --- mailbox (issue 4): each feature adds its keys in its own section --------------------------
# [events]
EVENT_BUS = web.AppKey("event_bus", EventBus)
EVENTS = web.AppKey("events", EventService)
# [end events]
# [blobs]
BLOBS = web.AppKey("blobs", BlobService)
BLOB_GC = web.AppKey("blob_gc", BlobGc)
# [end blobs]
# [cases]
CASES = web.AppKey("cases", CaseService)
PROCEDURES = web.AppKey("procedures", ProcedureService)
# [end cases]
# [delivery]
DELIVERY = web.AppKey("delivery", DeliveryService)
# [end delivery]
# [messages]
MESSAGES = web.AppKey("messages", MessageService)
# [end messages]
# [notifications]
NOTIFICATIONS = web.AppKey("notifications", NotificationService)
# [end notifications]
# [inbox]
INBOX = web.AppKey("inbox", InboxService)
INBOX_COLLECTOR = web.AppKey("inbox_collector", Collector)
# [end inbox]
# [cards]
CARDS = web.AppKey("cards", CardService)
# [end cards]
