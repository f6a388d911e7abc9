"""The client's local state: pins, the last verified tree head, tokens, what it has seen.

One JSON file per (server origin, login name), under the user's config folder by XDG
rules: ``$XDG_CONFIG_HOME/postbox`` (an absolute path) or ``~/.config/postbox``; folders
0700, files 0600, written atomically (temporary file, fsync, rename). Tests and scripts
pass their own folder (``--state-dir``).

What it holds, and why it may be on disk:

* the server **pins** (origin, log key, receipt key): public, and the basis of trust;
* the last **verified tree head** and the last seen **chain head** of every subject the
  client verified: public; they are what a consistency proof is demanded against;
* **pinned org roots** and **pinned identities** (trust on first use, or verified by
  activation code or fingerprint): public keys;
* the highest bundle **generation** seen per kind (rollback protection);
* the session's **tokens**: bearer secrets, stored only in this 0600 file.

Never written here: passphrases, anything derived from them, private keys, activation
codes or recovery keys. The encrypted key bundle on the server is the only store of
private keys.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from postbox.client.errors import StateError
from postbox.crypto import shapes
from postbox.crypto.certs import ORG_ROOT_SHAPE, OrgRoot
from postbox.crypto.encoding import KEY_BYTES
from postbox.crypto.errors import CryptoError
from postbox.crypto.logevents import CHAIN_HEAD_SHAPE, ChainHead
from postbox.crypto.primitives import H
from postbox.crypto.transparency import TREE_HEAD_SHAPE, TreeHead

STATE_VERSION: Final = 1
APP_FOLDER: Final = "postbox"
ANONYMOUS: Final = "_anonymous"
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/postbox`` if that is an absolute path, else ``~/.config/postbox``.

    The XDG base-directory spec says relative values are invalid and must be ignored.
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / APP_FOLDER
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / APP_FOLDER


def _slug(text: str) -> str:
    """A file-name-safe, recognisable and collision-free form of ``text``."""
    safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", text)[:48].strip("._") or "x"
    return f"{safe}-{H(text.encode('utf-8'), 5).hex()}"


@dataclass(repr=False)
class Tokens:
    """A session's tokens; ``expires`` is the access token's expiry on the client clock."""

    access: str
    refresh: str
    expires: int
    session: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "expires": self.expires,
            "session": self.session,
        }

    def __repr__(self) -> str:  # never print a bearer token
        return f"Tokens(expires={self.expires})"


@dataclass
class ClientState:
    """Everything the client remembers about one server and one login (see module docs)."""

    origin: str
    login: str | None
    log_pk: str | None = None
    receipt_pk: str | None = None
    #: leaf 0 of the log was checked against the pins
    server_checked: bool = False
    account: str | None = None
    kind: str | None = None
    org: str | None = None
    identity_kid: str | None = None
    tokens: Tokens | None = None
    sth: TreeHead | None = None
    gens: dict[str, int] = field(default_factory=dict)
    chains: dict[str, ChainHead] = field(default_factory=dict)
    org_roots: dict[str, OrgRoot] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    #: identities checked by activation code or fingerprint: subject -> kid
    verified: dict[str, str] = field(default_factory=dict)
    #: the ``seq`` of the last live event handled (``client.events``); None: none yet
    events_cursor: int | None = None

    # --- serialisation --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "origin": self.origin,
            "login": self.login,
            "log_pk": self.log_pk,
            "receipt_pk": self.receipt_pk,
            "server_checked": self.server_checked,
            "account": self.account,
            "kind": self.kind,
            "org": self.org,
            "identity_kid": self.identity_kid,
            "tokens": None if self.tokens is None else self.tokens.to_json(),
            "sth": self.sth,
            "gens": dict(self.gens),
            "chains": dict(self.chains),
            "org_roots": dict(self.org_roots),
            "identities": dict(self.identities),
            "verified": dict(self.verified),
            "events_cursor": self.events_cursor,
        }

    @classmethod
    def from_json(cls, value: Any) -> ClientState:
        try:
            return cls._from_json(value)
        except (KeyError, TypeError, ValueError, CryptoError) as exc:
            raise StateError(f"state file is malformed: {exc}") from exc

    @classmethod
    def _from_json(cls, value: Any) -> ClientState:
        if not isinstance(value, dict) or value.get("v") != STATE_VERSION:
            raise ValueError(f"expected a version {STATE_VERSION} state object")
        tokens = value.get("tokens")
        sth = value.get("sth")
        if sth is not None:
            shapes.check(TREE_HEAD_SHAPE, sth, "sth")
        chains = dict(value.get("chains") or {})
        for subject, head in chains.items():
            shapes.check(CHAIN_HEAD_SHAPE, head, f"chains.{subject}")
        roots = dict(value.get("org_roots") or {})
        for org, root in roots.items():
            shapes.check(ORG_ROOT_SHAPE, root, f"org_roots.{org}")
        for name in ("log_pk", "receipt_pk"):
            pk = value.get(name)
            if pk is not None:
                shapes.check(shapes.b64(KEY_BYTES), pk, name)
        return cls(
            origin=_str(value["origin"]),
            login=_opt_str(value.get("login")),
            log_pk=_opt_str(value.get("log_pk")),
            receipt_pk=_opt_str(value.get("receipt_pk")),
            server_checked=bool(value.get("server_checked", False)),
            account=_opt_str(value.get("account")),
            kind=_opt_str(value.get("kind")),
            org=_opt_str(value.get("org")),
            identity_kid=_opt_str(value.get("identity_kid")),
            tokens=None
            if tokens is None
            else Tokens(
                access=_str(tokens["access"]),
                refresh=_str(tokens["refresh"]),
                expires=int(tokens["expires"]),
                session=_opt_str(tokens.get("session")),
            ),
            sth=cast(TreeHead | None, sth),
            gens={str(k): int(v) for k, v in (value.get("gens") or {}).items()},
            chains=cast(dict[str, ChainHead], chains),
            org_roots=cast(dict[str, OrgRoot], roots),
            identities={str(k): _str(v) for k, v in (value.get("identities") or {}).items()},
            verified={str(k): _str(v) for k, v in (value.get("verified") or {}).items()},
            events_cursor=_opt_int(value.get("events_cursor")),
        )

    def forget_session(self) -> None:
        self.tokens = None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a non-negative integer")
    return int(value)


class StateStore:
    """Reads and writes state files under one folder (default: :func:`config_dir`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else config_dir()

    def path_for(self, origin: str, login: str | None) -> Path:
        name = ANONYMOUS if login is None else _slug(login)
        return self.root / "state" / _slug(origin) / f"{name}.json"

    def _ensure_dir(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        # mkdir's mode is filtered by the umask and ignored for existing folders
        for part in [folder, *folder.parents]:
            if part == self.root.parent:
                break
            if stat.S_IMODE(part.stat().st_mode) & 0o077:
                os.chmod(part, DIR_MODE)

    def load(self, origin: str, login: str | None) -> ClientState:
        """The state for this server and login; a fresh one if there is none yet."""
        path = self.path_for(origin, login)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return ClientState(origin=origin, login=login)
        if mode & 0o077:
            raise StateError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        try:
            value = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: {exc}") from exc
        state = ClientState.from_json(value)
        if state.origin != origin or state.login != login:
            raise StateError(f"{path} belongs to another server or login")
        return state

    def save(self, state: ClientState) -> Path:
        """Write atomically with mode 0600; returns the path."""
        path = self.path_for(state.origin, state.login)
        self._ensure_dir(path.parent)
        data = json.dumps(state.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        write_private_file(path, data.encode("utf-8"))
        return path

    def delete(self, origin: str, login: str | None) -> None:
        self.path_for(origin, login).unlink(missing_ok=True)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temporary file, fsync, rename) with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
