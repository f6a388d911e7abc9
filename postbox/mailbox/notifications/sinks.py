"""Where mails go: an SMTP server (aiosmtplib) or, on the embedded default, .eml files.

A sink opens one *session* per batch — one SMTP connection (STARTTLS or implicit TLS,
optionally authenticated) reused for every mail of the batch — and sends mails one by one;
:meth:`Session.send` raises for a mail that did not go out. The file sink writes each mail
atomically (temporary file, fsync, rename, fsync of the folder) as
``<data-dir>/mail/<message-id>.eml``; a resent notification replaces its file (same
Message-ID, same name).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Protocol

import aiosmtplib


class Session(Protocol):
    async def send(self, msg: EmailMessage, *, sender: str, to: str) -> None: ...


class Sink(Protocol):
    def session(self) -> AbstractAsyncContextManager[Session]: ...

    def describe(self) -> str: ...


# --- SMTP --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | tls | none
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 30.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


class _SmtpSession:
    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self._smtp = smtp

    async def send(self, msg: EmailMessage, *, sender: str, to: str) -> None:
        await self._smtp.send_message(msg, sender=sender, recipients=[to])


class SmtpSink:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def describe(self) -> str:
        c = self._config
        return f"smtp {c.host}:{c.port} ({c.security})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        c = self._config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.security == "tls",
            # starttls: required (aiosmtplib fails if the server does not offer it)
            start_tls=c.security == "starttls",
            username=c.username or None,
            password=c.password or None,
            timeout=c.timeout_s,
            tls_context=c.tls_context,
        )
        await smtp.connect()
        try:
            yield _SmtpSession(smtp)
        finally:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


# --- .eml files ----------------------------------------------------------------------------------
def eml_name(mail_id: str) -> str:
    """``<abc@host>`` → ``abc@host.eml`` (our Message-IDs are hex@host: filename-safe)."""
    name = mail_id.strip().removeprefix("<").removesuffix(">")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a file name: {mail_id!r}")
    return name + ".eml"


def _write_atomically(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # addresses: private
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _FileSession:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def send(self, msg: EmailMessage, *, sender: str, to: str) -> None:
        data = msg.as_bytes(policy=SMTP_POLICY)
        name = eml_name(str(msg["Message-ID"]))
        await asyncio.to_thread(_write_atomically, self._folder, name, data)


class FileSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return f"eml files in {self.folder}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        yield _FileSession(self.folder)
