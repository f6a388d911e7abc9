"""Every table, declared once (SQLAlchemy Core).

Conventions: ids are the protocol's 22-character b64 strings; times are integer Unix
milliseconds; signed objects are stored as their canonical JSON text (``cj``), exactly as
they were signed and as they are served; secrets derived from client keys are stored only
peppered or wrapped (see :mod:`postbox.mailbox.secrets`). Nothing here can hold a subject,
body, form field, file name or file content: those exist only inside ciphertext.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Deterministic constraint names, so migrations are the same on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(22)
KID = String(22)
TIME = BigInteger

# --- organisations and accounts -------------------------------------------------------------
organisations = Table(
    "organisations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("names", Text, nullable=False),  # cj {"de": "...", "en": "...", ...}
    Column("notification_name", Text, nullable=False),  # neutral name used in e-mails
    Column("self_registration", Boolean, nullable=False, default=False),
    # [messages] citizens may write to this org's team mailboxes (replies in threads always)
    Column("citizens_may_write", Boolean, nullable=False, server_default=text("true")),
    Column("root", Text),  # cj of the signed org root, once registered
    Column("root_fingerprint", String(39)),
    Column("created", TIME, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", ID, primary_key=True),
    # citizen | caseworker | connector | admin | operator
    Column("kind", String(16), nullable=False),
    Column("org_id", ID, ForeignKey("organisations.id")),
    Column("login", Text, unique=True),  # normalised login name, set at activation
    Column("status", String(16), nullable=False),  # active | disabled
    # verified by activation code (True), self-registered (False)
    Column("identity_verified", Boolean, nullable=False, default=False),
    Column("language", String(16), nullable=False, default="de"),
    Column("created", TIME, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("account_id", ID, ForeignKey("accounts.id"), primary_key=True),
    Column("pass_verifier", LargeBinary(32), nullable=False),  # H(key=K_pepper, auth_pk)
    Column("recovery_verifier", LargeBinary(32), nullable=False),
    Column("salt", LargeBinary(16), nullable=False),
    Column("ops", Integer, nullable=False),
    Column("mem", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_attempt", TIME, nullable=False, default=0),  # per-account delay
    Column("updated", TIME, nullable=False),
)

bundles = Table(
    "bundles",
    metadata,
    Column("account_id", ID, ForeignKey("accounts.id"), primary_key=True),
    Column("kind", String(8), primary_key=True),  # pass | recovery
    Column("gen", BigInteger, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),  # server-key AEAD of cj(bundle)
    Column("updated", TIME, nullable=False),
)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge", LargeBinary(32), primary_key=True),
    Column("login", Text, nullable=False),
    Column("expires", TIME, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
    Index("ix_challenges_expires", "expires"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", ID, primary_key=True),  # the refresh-token family; "sid" in access tokens
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("method", String(8), nullable=False),  # pass | recovery
    Column("created", TIME, nullable=False),
    Column("last_seen", TIME, nullable=False),
    Column("expires", TIME, nullable=False),
    Column("revoked", TIME),
    Column("client", Text, nullable=False, default=""),  # user agent, for the session list
    Index("ix_sessions_account_id", "account_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("hash", LargeBinary(32), primary_key=True),  # H(token); the token is never stored
    Column("session_id", ID, ForeignKey("sessions.id"), nullable=False),
    Column("created", TIME, nullable=False),
    Column("used", TIME),  # rotated; presenting it again revokes the whole family
    Index("ix_refresh_tokens_session_id", "session_id"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(80), primary_key=True),  # e.g. "login-ip:<H(address)>"
    Column("window", TIME, nullable=False),
    Column("count", Integer, nullable=False),
)

# --- teams ----------------------------------------------------------------------------------
teams = Table(
    "teams",
    metadata,
    Column("id", ID, primary_key=True),  # the team mailbox id
    Column("org_id", ID, ForeignKey("organisations.id"), nullable=False),
    Column("names", Text, nullable=False),  # cj {"de": ..., ...}
    Column("key_kid", KID),  # current certified team encryption key
    Column("rotation_pending", Boolean, nullable=False, default=False),
    Column("created", TIME, nullable=False),
    Index("ix_teams_org_id", "org_id"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", ID, ForeignKey("teams.id"), primary_key=True),
    Column("account_id", ID, ForeignKey("accounts.id"), primary_key=True),
    Column("added", TIME, nullable=False),
    Column("removed", TIME),
    Index("ix_team_members_account_id", "account_id"),
)

team_wraps = Table(
    "team_wraps",
    metadata,
    Column("team_id", ID, ForeignKey("teams.id"), primary_key=True),
    Column("team_kid", KID, primary_key=True),
    Column("member_id", ID, ForeignKey("accounts.id"), primary_key=True),
    Column("member_kid", KID, nullable=False),
    Column("by_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("wrap", Text, nullable=False),  # cj of the signed team wrap (opaque sealed key)
    Column("created", TIME, nullable=False),
)

# --- invitations ----------------------------------------------------------------------------
invitations = Table(
    "invitations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organisations.id")),
    Column("kind", String(16), nullable=False),  # the role the new account gets
    Column("team_id", ID, ForeignKey("teams.id")),
    Column("authoriser", LargeBinary(32), nullable=False, unique=True),  # act_auth
    Column("inviter_id", ID, ForeignKey("accounts.id")),  # NULL: the operator CLI
    Column("created", TIME, nullable=False),
    Column("expires", TIME, nullable=False),
    Column("used", TIME),
    Column("account_id", ID, ForeignKey("accounts.id")),
    Column("act_mac", LargeBinary(32)),  # the activating client's MAC, for the inviter
    Column("verified", TIME),  # when the inviting side checked act_mac
)

# --- key directory and transparency log -------------------------------------------------------
certificates = Table(
    "certificates",
    metadata,
    Column("kid", KID, primary_key=True),
    Column("subject", ID, nullable=False),
    Column("use", String(8), nullable=False),  # sign | encrypt
    Column("kind", String(16), nullable=False),
    Column("org_id", ID),
    Column("served", Text, nullable=False),  # cj of the signed certificate as served
    Column("created", TIME, nullable=False),
    Column("expires", TIME),
    Column("log_index", BigInteger),  # NULL while a staff identity awaits org certification
    Column("revoked", TIME),
    Column("superseded", TIME),
    Index("ix_certificates_subject_use", "subject", "use"),
)

log_state = Table(
    "log_state",
    metadata,
    Column("id", SmallInteger, primary_key=True),  # always 1: the row appends lock
    Column("size", BigInteger, nullable=False),
)

log_leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("subject", ID, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(16), nullable=False),
    Column("leaf", LargeBinary, nullable=False),  # cj(event)
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("ts", TIME, nullable=False),
    UniqueConstraint("subject", "seq"),
)

log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

log_heads = Table(
    "log_heads",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("ts", TIME, nullable=False),
    Column("sig", LargeBinary(64), nullable=False),
    Index("ix_log_heads_size", "size"),
)

# --- audit log ------------------------------------------------------------------------------
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", TIME, nullable=False),
    Column("actor", ID),  # account id, or NULL for the operator / the system
    Column("action", String(40), nullable=False),
    Column("subject", ID),
    Column("details", Text, nullable=False),  # cj; metadata only, never secrets
    Column("prev", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# --- mailbox: blobs, messages, threads, mailbox entries, notification outbox ------------------
# (issue 4; the tables the features share. Feature-private tables follow in their sections.)
PK = BigInteger().with_variant(Integer, "sqlite")  # an autoincrementing surrogate key

blobs = Table(
    "blobs",
    metadata,
    Column("id", ID, primary_key=True),  # chosen by the client (16 random bytes, b64)
    Column("owner_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("state", String(12), nullable=False),  # uploading | complete
    Column("size", BigInteger, nullable=False),  # the announced blob length (ciphertext)
    Column("received", BigInteger, nullable=False, default=0),  # bytes stored so far
    Column("hash", LargeBinary(32)),  # H(key="postbox/v1/blob", blob), set on completion
    Column("created", TIME, nullable=False),
    Column("completed", TIME),
    # an incomplete or unreferenced blob is garbage-collected after this time; NULL once a
    # message references it (then retention decides)
    Column("expires", TIME),
    Index("ix_blobs_owner_id", "owner_id"),
    Index("ix_blobs_expires", "expires"),
)

messages = Table(
    "messages",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False),  # header.id, chosen by the client
    Column("from_id", ID, nullable=False),  # header.from: an account or a team mailbox
    Column("signer_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("org_id", ID),  # the organisation the exchange belongs to (retention, cases)
    Column("kind", String(16), nullable=False),  # header.kind
    Column("thread_id", ID),
    Column("case_id", ID),
    Column("created", TIME, nullable=False),  # header.created (the client's clock)
    Column("accepted", TIME, nullable=False),  # the server's clock, as in the receipt
    Column("digest", LargeBinary(64), nullable=False),
    Column("wire", LargeBinary, nullable=False),  # the canonical wire body, as received
    Column("receipt", Text, nullable=False),  # cj of the signed submission receipt
    Column("size", BigInteger, nullable=False),  # wire bytes + referenced blob bytes
    UniqueConstraint("from_id", "id"),
    Index("ix_messages_case_id", "case_id"),
)

message_blobs = Table(
    "message_blobs",
    metadata,
    Column("blob_id", ID, ForeignKey("blobs.id"), primary_key=True),  # a blob is used once
    Column("message_pk", PK, ForeignKey("messages.pk"), nullable=False),
    Column("position", SmallInteger, nullable=False),  # index in header.blobs
    Index("ix_message_blobs_message_pk", "message_pk"),
)

threads = Table(
    "threads",
    metadata,
    Column("id", ID, primary_key=True),  # header.thread of the message that started it
    Column("org_id", ID, ForeignKey("organisations.id")),
    Column("started_by", ID, nullable=False),  # the mailbox that started it
    Column("created", TIME, nullable=False),
)

thread_mailboxes = Table(
    "thread_mailboxes",
    metadata,
    Column("thread_id", ID, ForeignKey("threads.id"), primary_key=True),
    Column("mailbox_id", ID, primary_key=True),  # every from/to mailbox of its messages
    Index("ix_thread_mailboxes_mailbox_id", "mailbox_id"),
)

mailbox_entries = Table(
    "mailbox_entries",
    metadata,
    # one row per mailbox a message is addressed to (header.rcpt: every `to` and `from`);
    # `pk` orders a mailbox newest-first and is the keyset-pagination cursor
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("mailbox_id", ID, nullable=False),
    Column("message_pk", PK, ForeignKey("messages.pk"), nullable=False),
    Column("folder", String(8), nullable=False),  # inbox | sent | archive | trash
    Column("kind", String(16), nullable=False),  # copied from the message, for filters
    Column("thread_id", ID),
    Column("case_id", ID),
    Column("accepted", TIME, nullable=False),
    Column("read", TIME),  # NULL: unread (per mailbox; shared by a team's members)
    Column("flagged", Boolean, nullable=False, default=False),
    Column("moved", TIME),  # when it last changed folder (trash purge counts from it)
    UniqueConstraint("mailbox_id", "message_pk"),
    Index("ix_mailbox_entries_mailbox_id_folder_pk", "mailbox_id", "folder", "pk"),
    Index("ix_mailbox_entries_mailbox_id_thread_id_pk", "mailbox_id", "thread_id", "pk"),
    Index("ix_mailbox_entries_mailbox_id_case_id_pk", "mailbox_id", "case_id", "pk"),
    Index("ix_mailbox_entries_mailbox_id_folder_read", "mailbox_id", "folder", "read"),
    Index("ix_mailbox_entries_message_pk", "message_pk"),
)

outbox = Table(
    "outbox",
    metadata,
    # notification outbox: written in the message's transaction; the notifications issue
    # adds the workers that claim, send and mark rows
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("message_pk", PK, ForeignKey("messages.pk")),
    Column("kind", String(24), nullable=False),  # new_message | decision | info_request | …
    Column("created", TIME, nullable=False),
    # pending | sending (claimed) | sent | dead | skipped | dropped; see [notifications]
    Column("state", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", TIME, nullable=False),
    Column("done", TIME),
    Index("ix_outbox_state_next_attempt", "state", "next_attempt"),
    Index("ix_outbox_message_pk", "message_pk"),
)

# --- [uploads] upload parts (blobs feature) ----------------------------------------------------
# A blob is stored as the parts it was uploaded in (no copy on completion): these rows say
# how it is cut and which part files make it. Both go with their blob row (ON DELETE
# CASCADE), so the features that delete blob rows need not know about them.
uploads = Table(
    "uploads",
    metadata,
    Column("blob_id", ID, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("part_bytes", Integer, nullable=False),  # every part but the last has this size
    Column("parts", Integer, nullable=False),  # ⌈size / part_bytes⌉
)

upload_parts = Table(
    "upload_parts",
    metadata,
    Column("blob_id", ID, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("checksum", LargeBinary(32), nullable=False),  # BLAKE2b-256 of the part's bytes
    Column("received", TIME, nullable=False),
)
# --- [end uploads] ------------------------------------------------------------------------------

# --- [cases] cases, case history, reference counters, procedures (cases feature) ---------------
cases = Table(
    "cases",
    metadata,
    # `pk` orders listings newest-first and is the keyset-pagination cursor
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False, unique=True),  # header.case of the opening application
    Column("org_id", ID, ForeignKey("organisations.id"), nullable=False),
    Column("team_id", ID, ForeignKey("teams.id"), nullable=False),
    Column("citizen_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("procedure_id", ID, nullable=False),
    Column("procedure_version", BigInteger, nullable=False),
    Column("reference", String(64), nullable=False),  # Aktenzeichen, from the org's pattern
    Column("status", String(16), nullable=False),  # see postbox.mailbox.cases.transitions
    Column("opened_from", ID, nullable=False),  # (from, id) of the opening application
    Column("opened_id", ID, nullable=False),
    Column("created", TIME, nullable=False),
    Column("updated", TIME, nullable=False),
    UniqueConstraint("org_id", "reference"),
    Index("ix_cases_citizen_id_pk", "citizen_id", "pk"),
    Index("ix_cases_team_id_pk", "team_id", "pk"),
    Index("ix_cases_team_id_status_pk", "team_id", "status", "pk"),
)

case_history = Table(
    "case_history",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("case_pk", PK, ForeignKey("cases.pk"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", TIME, nullable=False),
    Column("by_id", ID, ForeignKey("accounts.id"), nullable=False),
    # how: status (POST /cases/{case}/status: server metadata) | application | decision |
    # withdrawal | info_request | reply (the citizen's answer to an info request)
    Column("via", String(16), nullable=False),
    Column("message_from", ID),  # the signed envelope (from, id) behind it; NULL: metadata
    Column("message_id", ID),
    Index("ix_case_history_case_pk_pk", "case_pk", "pk"),
)

case_counters = Table(
    "case_counters",
    metadata,
    # reference numbers: one counter per organisation and year (0: patterns without {year})
    Column("org_id", ID, ForeignKey("organisations.id"), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", BigInteger, nullable=False),  # the last number handed out
)

case_settings = Table(
    "case_settings",
    metadata,
    Column("org_id", ID, ForeignKey("organisations.id"), primary_key=True),
    Column("pattern", String(64), nullable=False),  # e.g. ABH-{year}-{seq:6}
    Column("updated", TIME, nullable=False),
    Column("updated_by", ID, ForeignKey("accounts.id")),
)

procedures = Table(
    "procedures",
    metadata,
    Column("org_id", ID, ForeignKey("organisations.id"), primary_key=True),
    Column("id", ID, primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("signed", Text, nullable=False),  # cj of the signed procedure, as served
    Column("by_kid", KID, nullable=False),
    Column("digest", LargeBinary(64), nullable=False),  # form.digest of this version
    Column("published", TIME, nullable=False),
    Column("published_by", ID, ForeignKey("accounts.id"), nullable=False),
)
# --- [end cases] --------------------------------------------------------------------------------

# --- [delivery] delivery events, read receipts, legal clock (delivery feature) -----------------
delivery_events = Table(
    "delivery_events",
    metadata,
    # the server-signed, hash-chained delivery record of one authority message (PROTOCOL.md
    # §8); `seq` 0 is `available`. The primary key makes two concurrent appends of the same
    # link impossible; the unique (message, event, by) keeps one `retrieved` per account
    # and one `notified` per mailbox even if a caller skipped the row lock.
    Column("message_pk", PK, ForeignKey("messages.pk"), primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("event", String(12), nullable=False),  # available | notified | retrieved
    Column("by_id", ID),
    Column("at", TIME, nullable=False),
    Column("signed", Text, nullable=False),  # cj of the signed delivery event, as served
    UniqueConstraint("message_pk", "event", "by_id"),
)

delivery_clocks = Table(
    "delivery_clocks",
    metadata,
    # the legal clock of a decision (one row per message a rule applies to). The rule
    # version, time zone and holiday calendar are frozen at provision, so a later change of
    # the organisation's settings never moves a past decision's dates.
    Column("message_pk", PK, ForeignKey("messages.pk"), primary_key=True, autoincrement=False),
    Column("mailbox_id", ID, nullable=False),  # the sending team
    Column("org_id", ID, nullable=False),
    Column("rule_id", String(64), nullable=False),  # a rule version id from rules.json
    Column("time_zone", String(64), nullable=False),
    Column("country", String(2), nullable=False),
    Column("subdivision", String(8)),
    Column("available", TIME, nullable=False),
    Column("notified", TIME),  # first notification sent, when recorded
    Column("retrieved", TIME),  # first retrieval by a recipient citizen
    Column("deadline", TIME),  # instant after which a missing retrieval is overdue
    Column("overdue", TIME),  # when the overdue job marked it (once)
    Index("ix_delivery_clocks_mailbox_id_overdue", "mailbox_id", "overdue"),
    Index("ix_delivery_clocks_deadline", "deadline"),
)

legal_settings = Table(
    "legal_settings",
    metadata,
    # per organisation: where its days are counted and which rule family governs decisions
    Column("org_id", ID, ForeignKey("organisations.id"), primary_key=True),
    Column("time_zone", String(64), nullable=False),
    Column("country", String(2), nullable=False),
    Column("subdivision", String(8)),  # federal state (holiday calendar) or NULL
    Column("decision_rule", String(64), nullable=False),  # a rule family from rules.json
    Column("updated", TIME, nullable=False),
)

read_receipts = Table(
    "read_receipts",
    metadata,
    # a reader's signed read receipt and the server's countersignature; one per
    # (message, mailbox, reader), so a resent receipt gets the stored answer back
    Column("message_pk", PK, ForeignKey("messages.pk"), primary_key=True, autoincrement=False),
    Column("mailbox_id", ID, primary_key=True),
    Column("reader_id", ID, ForeignKey("accounts.id"), primary_key=True),
    Column("signed_read", Text, nullable=False),  # cj of the signed read receipt
    Column("countersign", Text, nullable=False),  # cj of the signed countersignature
    Column("received", TIME, nullable=False),
)
# --- [end delivery] -----------------------------------------------------------------------------

# --- [inbox] retention rules per organisation (inbox feature) ----------------------------------
from sqlalchemy import text  # noqa: E402 - kept inside this section (shared-file rule)

retention = Table(
    "retention",
    metadata,
    # an organisation's retention rule; without a row: keep messages, purge trash after 30 days
    Column("org_id", ID, ForeignKey("organisations.id"), primary_key=True),
    # the org's exchanges (messages.org_id) go this many days after `accepted`; NULL: kept
    Column("delete_after_days", Integer),
    # an entry in the trash of one of the org's mailboxes goes this many days after `moved`
    Column("trash_days", Integer, nullable=False),
    Column("updated", TIME, nullable=False),
    Column("updated_by", ID, ForeignKey("accounts.id")),
)
# Retention finds an organisation's oldest messages by range, never by a scan.
Index("ix_messages_org_id_accepted", messages.c.org_id, messages.c.accepted)
# Partial indexes. Unread entries newest first: PostgreSQL cannot order the equal keys of
# (mailbox_id, folder, read) by pk, so without it a page of a large unread folder sorts.
# Trash entries by age (trash purge) and flagged entries (flagged filter) are few, so sends
# do not pay for those two. (Predicates as SQL text both databases parse alike: the
# migration is rendered once.)
_UNREAD = text("read IS NULL")
_IN_TRASH = text("folder = 'trash'")
_FLAGGED = text("flagged = true")
Index(
    "ix_mailbox_entries_unread",
    mailbox_entries.c.mailbox_id,
    mailbox_entries.c.folder,
    mailbox_entries.c.pk,
    sqlite_where=_UNREAD,
    postgresql_where=_UNREAD,
)
Index(
    "ix_mailbox_entries_trash_moved",
    mailbox_entries.c.moved,
    sqlite_where=_IN_TRASH,
    postgresql_where=_IN_TRASH,
)
Index(
    "ix_mailbox_entries_flagged",
    mailbox_entries.c.mailbox_id,
    mailbox_entries.c.folder,
    mailbox_entries.c.flagged,  # constant, but SQLite (no statistics) then prefers this index
    mailbox_entries.c.pk,
    sqlite_where=_FLAGGED,
    postgresql_where=_FLAGGED,
)
# --- [end inbox] --------------------------------------------------------------------------------

# --- [messages] (messages feature; e.g. an organisations column needs the lead's OK) ---------
# --- [end messages] -----------------------------------------------------------------------------

# --- [events] live events (events feature) ------------------------------------------------------
events = Table(
    "events",
    metadata,
    # metadata events for an account's connected clients; `seq` is the reconnect cursor
    Column("seq", PK, primary_key=True, autoincrement=True),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("type", String(32), nullable=False),  # message | status | receipt | …
    Column("data", Text, nullable=False),  # cj; ids and states only, never content
    Column("at", TIME, nullable=False),
    Index("ix_events_account_id_seq", "account_id", "seq"),
    Index("ix_events_at", "at"),
)
# --- [end events] -------------------------------------------------------------------------------

# --- [notifications] e-mail notifications: outbox delivery state, addresses (notifications) ----
# The outbox (above) is the queue. Columns the workers add to it: the notification's
# Message-ID (committed before the first SMTP attempt, reused by every retry), the claim's
# expiry (a crashed worker's claim is taken again after it) and the last failure's class
# (never content: an error name and an SMTP reply code).
outbox.append_column(Column("mail_id", String(200)))
outbox.append_column(Column("claimed_until", TIME))
outbox.append_column(Column("last_error", String(200)))
Index("ix_outbox_mail_id", outbox.c.mail_id, unique=True)
# Where an account's notifications go; used only once verified (verification by link follows).
accounts.append_column(Column("notification_address", Text))
accounts.append_column(
    Column("notification_verified", Boolean, nullable=False, server_default=text("false"))
)
# --- [end notifications] ------------------------------------------------------------------------
