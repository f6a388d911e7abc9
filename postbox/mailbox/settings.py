"""Server settings: one frozen record, from flags, ``POSTBOX_…`` variables and a TOML file.

Precedence: command-line flag, then environment variable, then the ``--config`` TOML file,
then the default. Everything is validated once, at start; unsafe combinations are refused
with a message that says what to change. Secrets are not settings: they live in files
under ``<data-dir>/secrets`` (:mod:`postbox.mailbox.secrets`) and never appear here.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from postbox.crypto.attachment import blob_length
from postbox.crypto.errors import CryptoError
from postbox.crypto.login import check_origin


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message says what to do."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    #: SQLAlchemy URL; empty means SQLite at <data_dir>/postbox.db
    db: str = ""
    #: the origin clients sign at login (scheme://host[:port]); empty means http://host:port
    public_origin: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: the server sits behind a TLS-terminating reverse proxy (X-Forwarded-For is trusted)
    trusted_proxy: bool = False
    access_token_seconds: int = 15 * 60
    refresh_token_seconds: int = 30 * 24 * 3600
    challenge_seconds: int = 120
    #: login attempts per client address per minute
    login_rate_per_minute: int = 30
    #: per-account delay after failures: base * 2^(failures-1), capped
    login_delay_base_ms: int = 500
    login_delay_cap_ms: int = 60_000
    #: a new signed tree head at least this often
    tree_head_seconds: int = 3600
    #: largest JSON request body
    max_json_bytes: int = 256 * 1024
    # --- mailbox (messages, attachments, live events) --------------------------------------
    #: largest POST /api/v1/messages body (the canonical wire envelope)
    max_message_bytes: int = 4 * 1024 * 1024
    #: largest attachment blob (announced in GET /api/v1/server): by default the encrypted
    #: blob of a 1 GiB file (Padmé padding and secretstream framing add about 3 %)
    max_blob_bytes: int = blob_length(1024 * 1024 * 1024)
    #: largest upload part (PROTOCOL.md §6: parts of a few MiB)
    max_part_bytes: int = 8 * 1024 * 1024
    #: stored blob bytes per account (complete and in-progress uploads)
    quota_bytes: int = 4 * 1024 * 1024 * 1024
    #: incomplete and unreferenced blobs are deleted after this long
    upload_expiry_seconds: int = 24 * 3600
    #: how often expired blobs, purged trash and retention deletions are collected
    gc_interval_seconds: int = 600
    #: a WebSocket must authenticate within this many seconds
    ws_auth_seconds: int = 5
    #: most sends written in one group-commit transaction
    send_batch_max: int = 128
    #: SQLite durability: FULL survives power loss, NORMAL only process crashes
    sqlite_synchronous: str = "FULL"
    #: run migrations at start (with a lock, so only one process migrates)
    migrate_on_start: bool = True
    # --- notifications (e-mail; docs/operations.md "Notifications") --------------------------
    #: run a notification worker inside ``postbox serve`` (no: only ``postbox worker`` sends)
    notification_worker: bool = True
    #: SMTP server; empty: every mail is written as an .eml file to <data_dir>/mail instead
    smtp_host: str = ""
    #: 0: the security's usual port (starttls 587, tls 465, none 25)
    smtp_port: int = 0
    #: starttls (required STARTTLS), tls (implicit TLS) or none (loopback relays only)
    smtp_security: str = "starttls"
    smtp_username: str = ""
    #: from POSTBOX_SMTP_PASSWORD or the TOML file only (never a flag: ps shows flags)
    smtp_password: str = field(default="", repr=False)
    smtp_timeout_seconds: int = 30
    #: the From address; empty: postbox@<public origin's host>
    mail_from: str = ""
    #: notifications claimed and sent per batch (one transaction and one SMTP connection)
    notify_batch: int = 100
    #: attempts before a notification is dead (listed and retried by the operator)
    notify_max_attempts: int = 8
    #: first retry after about this long, doubling per attempt (with jitter), capped
    notify_backoff_seconds: int = 60
    notify_backoff_cap_seconds: int = 6 * 3600
    #: a claimed batch not finished by then (a crashed worker) is claimed again
    notify_claim_seconds: int = 300
    #: an idle worker looks for due notifications this often
    notify_poll_seconds: int = 2
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # --- derived -------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.db or f"sqlite+aiosqlite:///{self.data_dir / 'postbox.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def origin(self) -> str:
        if self.public_origin:
            return self.public_origin
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if scheme == "https" else 80
        return f"{scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    def validate(self) -> Settings:
        """Refuse unsafe or inconsistent settings (raises :class:`SettingsError`)."""
        if not 0 < self.port < 65536:
            raise SettingsError(f"--port {self.port} is not a TCP port")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("--tls-cert and --tls-key go together")
        if not _is_loopback(self.host) and self.tls_cert is None and not self.trusted_proxy:
            raise SettingsError(
                f"refusing to listen on {self.host} without TLS: set --tls-cert/--tls-key, "
                "or --trusted-proxy when a reverse proxy terminates TLS in front of Postbox"
            )
        try:
            origin = check_origin(self.origin)
        except CryptoError as exc:
            raise SettingsError(f"--public-origin {self.origin!r}: {exc}") from exc
        if origin.startswith("http://") and not _is_loopback(_origin_host(origin)):
            raise SettingsError(
                f"--public-origin {origin} is not https: browsers would send passphrase-"
                "derived logins in clear; use https (or a loopback host for development)"
            )
        if self.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise SettingsError("--sqlite-synchronous must be FULL, EXTRA or NORMAL")
        for name in ("access_token_seconds", "refresh_token_seconds", "challenge_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        for name in (
            "max_message_bytes",
            "max_blob_bytes",
            "max_part_bytes",
            "quota_bytes",
            "upload_expiry_seconds",
            "gc_interval_seconds",
            "ws_auth_seconds",
            "send_batch_max",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.max_part_bytes > 64 * 1024 * 1024:
            raise SettingsError("max_part_bytes is at most 64 MiB")
        if self.challenge_seconds > 120:
            raise SettingsError("challenges live at most 120 s (PROTOCOL.md §4)")
        self._validate_mail()
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError("--db must be sqlite+aiosqlite://… or postgresql+asyncpg://…")
        return self

    @property
    def mail_dir(self) -> Path:
        """Where mail goes without an SMTP server (one .eml file per notification)."""
        return self.data_dir / "mail"

    @property
    def mail_host(self) -> str:
        """The domain of Message-IDs and of the default From address."""
        return _origin_host(self.origin)

    @property
    def mail_sender(self) -> str:
        return self.mail_from or f"postbox@{self.mail_host}"

    @property
    def smtp_effective_port(self) -> int:
        return self.smtp_port or {"starttls": 587, "tls": 465}.get(self.smtp_security, 25)

    def _validate_mail(self) -> None:
        if self.smtp_security not in ("starttls", "tls", "none"):
            raise SettingsError("--smtp-security must be starttls, tls or none")
        if not 0 <= self.smtp_port < 65536:
            raise SettingsError(f"--smtp-port {self.smtp_port} is not a TCP port")
        if (
            self.smtp_host
            and self.smtp_security == "none"
            and (self.smtp_username or self.smtp_password)
            and not _is_loopback(self.smtp_host)
        ):
            raise SettingsError(
                "refusing to send SMTP credentials in clear: use --smtp-security starttls or "
                "tls (plain SMTP only to a loopback relay)"
            )
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise SettingsError(
                "smtp_username and smtp_password (POSTBOX_SMTP_PASSWORD) go together"
            )
        if self.mail_from and (
            "@" not in self.mail_from or any(c in self.mail_from for c in "\r\n<>")
        ):
            raise SettingsError(f"--mail-from {self.mail_from!r} is not an address")
        for name in (
            "smtp_timeout_seconds",
            "notify_batch",
            "notify_max_attempts",
            "notify_backoff_seconds",
            "notify_backoff_cap_seconds",
            "notify_claim_seconds",
            "notify_poll_seconds",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")

    def describe_mail(self) -> str:
        """Where notifications go, for the start-up message (never the password)."""
        if not self.smtp_host:
            where = f"written as .eml files to {self.mail_dir.resolve()} (no SMTP server set)"
        else:
            user = f", as {self.smtp_username}" if self.smtp_username else ""
            where = (
                f"SMTP {self.smtp_host}:{self.smtp_effective_port} "
                f"({self.smtp_security}{user}), from {self.mail_sender}"
            )
        worker = "" if self.notification_worker else "; sent only by `postbox worker` processes"
        return f"mail           {where}{worker}"

    def describe(self) -> list[str]:
        """Where everything is, for the start-up message (no secrets, no passwords)."""
        return [
            f"listening on   {self.host}:{self.port}",
            f"public origin  {self.origin}",
            f"database       {_redact(self.database_url)}",
            f"blobs          {self.blobs_dir.resolve()}",
            f"secrets        {self.secrets_dir.resolve()} (files with mode 0600)",
            self.describe_mail(),
        ]


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def _origin_host(origin: str) -> str:
    host = origin.split("://", 1)[1]
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- loading -------------------------------------------------------------------------------
def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"not a yes/no value: {value!r}")


def _converter(name: str) -> Callable[[Any], Any]:
    default = Settings.__dataclass_fields__[name].default
    if name in ("tls_cert", "tls_key"):
        return lambda v: None if v in (None, "") else Path(v)
    if isinstance(default, bool):
        return _bool
    if isinstance(default, int):
        return int
    if isinstance(default, Path):
        return Path
    return str


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """Merge flag values (``None`` = not given), ``POSTBOX_*`` variables and a TOML file."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    from_file: dict[str, Any] = {}
    if config is not None:
        try:
            from_file = tomllib.loads(Path(config).read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"--config {config}: {exc}") from exc
    names = [f.name for f in fields(Settings) if f.name != "extra"]
    unknown = sorted(k.replace("-", "_") for k in from_file if k.replace("-", "_") not in names)
    if unknown:
        raise SettingsError(f"--config {config}: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in names:
        convert = _converter(name)
        raw: Any = flags.get(name)
        if raw is None:
            raw = environ.get("POSTBOX_" + name.upper())
        if raw is None:
            raw = from_file.get(name, from_file.get(name.replace("_", "-")))
        if raw is None:
            continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{name}: {exc}") from exc
    return Settings(**values).validate()
