"""The ``postbox`` command: the server, its database, the operator's tools and the auditor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from postbox import __version__, admin
from postbox.keys import audit as keys_audit
from postbox.keys.log import LogMismatch
from postbox.mailbox.app import create_app
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import head_revision, upgrade
from postbox.mailbox.notifications.process import run_worker
from postbox.mailbox.secrets import SecretsError
from postbox.mailbox.settings import Settings, SettingsError, load_settings

# flag name -> (settings field, help); each is also POSTBOX_<FIELD> and a TOML key
SERVER_FLAGS: dict[str, tuple[str, str]] = {
    "--host": ("host", "listen address (default 127.0.0.1)"),
    "--port": ("port", "listen port (default 8080)"),
    "--data-dir": ("data_dir", "data folder: SQLite database, blobs, secrets (default ./var)"),
    "--db": ("db", "database URL, e.g. postgresql+asyncpg://user@host/db (default SQLite)"),
    "--public-origin": (
        "public_origin",
        "origin clients sign at login, e.g. https://postbox.example",
    ),
    "--tls-cert": ("tls_cert", "TLS certificate chain (PEM)"),
    "--tls-key": ("tls_key", "TLS private key (PEM)"),
    "--trusted-proxy": ("trusted_proxy", "a reverse proxy terminates TLS in front (yes/no)"),
    "--sqlite-synchronous": ("sqlite_synchronous", "SQLite durability: FULL (default) or NORMAL"),
    # notifications (the SMTP password only as POSTBOX_SMTP_PASSWORD or in the TOML file)
    "--smtp-host": ("smtp_host", "SMTP server for notifications (default: .eml files in var/mail)"),
    "--smtp-port": ("smtp_port", "SMTP port (default: 587 starttls, 465 tls, 25 none)"),
    "--smtp-security": ("smtp_security", "starttls (default), tls or none (loopback only)"),
    "--smtp-username": ("smtp_username", "SMTP login (password: POSTBOX_SMTP_PASSWORD)"),
    "--mail-from": ("mail_from", "From address of notifications (default postbox@<origin host>)"),
    "--notification-worker": (
        "notification_worker",
        "serve: also send notifications (yes, default) or leave it to `postbox worker` (no)",
    ),
}


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with settings")
    for flag, (dest, text) in SERVER_FLAGS.items():
        parser.add_argument(flag, dest=dest, default=None, help=text)


def settings_from(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {dest: getattr(args, dest) for dest, _ in SERVER_FLAGS.values()}
    return load_settings(flags, config=args.config)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ssl_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SQL parameters would show login names; the drivers' loggers stay quiet.
    for quiet in ("sqlalchemy", "aiosqlite", "asyncpg"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    print(f"Postbox {__version__}", flush=True)
    for line in settings.describe():
        print("  " + line)
    print("  health check   GET /healthz", flush=True)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            ssl_context=ssl_context,
            print=None,
            access_log_format='%a "%r" %s %b %Tf',
        )
    except (LogMismatch, SecretsError) as exc:
        print(f"postbox: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for quiet in ("sqlalchemy", "aiosqlite", "asyncpg"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    print(f"Postbox {__version__} notification worker", flush=True)
    for line in settings.describe():
        if line.startswith(("database", "secrets", "mail")):
            print("  " + line)
    print("  stop with Ctrl-C or SIGTERM", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    try:
        asyncio.run(run())
    except SecretsError as exc:
        print(f"postbox worker: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> str | None:
        db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        try:
            return await upgrade(db)
        finally:
            await db.dispose()

    before = asyncio.run(run())
    head = head_revision()
    if before == head:
        print(f"database already at {head}")
    else:
        print(f"database migrated from {before or 'empty'} to {head}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postbox", description=__doc__)
    parser.add_argument("--version", action="version", version=f"postbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server")
    _add_settings_flags(serve)
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="send notifications only (run several for scale)")
    _add_settings_flags(worker)
    worker.set_defaults(func=_worker)
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (with a lock)")
    _add_settings_flags(up)
    up.set_defaults(func=_db_upgrade)
    admin.register(sub, _add_settings_flags, settings_from)
    keys_audit.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"postbox: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
