"""The notifications feature's place in the server: no HTTP routes yet (per-account
settings and address verification come with the next increment); :func:`start` builds the
service and, unless ``notification_worker`` is off, runs the worker as a background job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from postbox.mailbox.appkeys import (
    BACKGROUND,
    CLOCK,
    DB,
    EVENT_BUS,
    NOTIFICATIONS,
    SECRETS,
    SETTINGS,
)
from postbox.mailbox.clock import Clock
from postbox.mailbox.db.engine import Database
from postbox.mailbox.notifications.service import MailConfig, NotificationService
from postbox.mailbox.notifications.sinks import FileSink, Sink, SmtpConfig, SmtpSink
from postbox.mailbox.settings import Settings


def sink_for(settings: Settings) -> Sink:
    """SMTP when a host is set, else .eml files under ``<data-dir>/mail``."""
    if not settings.smtp_host:
        return FileSink(settings.mail_dir)
    return SmtpSink(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_effective_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout_s=float(settings.smtp_timeout_seconds),
        )
    )


def build_service(
    settings: Settings,
    db: Database,
    clock: Clock,
    *,
    receipt_seed: bytes,
    wake: Callable[[Collection[str]], Awaitable[None]],
) -> NotificationService:
    config = MailConfig(
        origin=settings.origin,
        host=settings.mail_host,
        sender=settings.mail_sender,
        batch=settings.notify_batch,
        max_attempts=settings.notify_max_attempts,
        backoff_ms=settings.notify_backoff_seconds * 1000,
        backoff_cap_ms=settings.notify_backoff_cap_seconds * 1000,
        claim_ms=settings.notify_claim_seconds * 1000,
        poll_s=float(settings.notify_poll_seconds),
    )
    return NotificationService(
        db, clock, config=config, sink=sink_for(settings), receipt_seed=receipt_seed, wake=wake
    )


async def start(app: web.Application) -> None:
    """Create the service (after events and delivery) and start the worker."""
    settings = app[SETTINGS]
    service = build_service(
        settings,
        app[DB],
        app[CLOCK],
        receipt_seed=app[SECRETS].receipt_seed,
        wake=app[EVENT_BUS].wake,
    )
    app[NOTIFICATIONS] = service
    if settings.notification_worker:
        app[BACKGROUND].spawn("notifications", service.run_forever)


def setup_routes(app: web.Application) -> None:
    """No routes in this increment."""
