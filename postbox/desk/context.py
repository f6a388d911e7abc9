"""What every ``postbox-desk`` command gets: its :class:`Ctx` (arguments, output, passphrases,
state folder, remembered settings) and the exit codes it returns.

Exit codes: 0 on success, 1 on an error, 2 on a usage error and **3 on a security alarm**
(see :mod:`postbox.desk.cli`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from postbox.client import Client, Pins
from postbox.client.errors import UsageError
from postbox.client.keyring import Keyring
from postbox.crypto.errors import CryptoError
from postbox.desk.config import DeskConfig, save_config
from postbox.desk.prompt import Passphrases

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_ALARM: Final = 3


@dataclass
class Ctx:
    args: argparse.Namespace
    out: TextIO
    err: TextIO
    passphrases: Passphrases
    root: Path
    config: DeskConfig

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def server(self) -> str:
        url = getattr(self.args, "server", None) or self.config.server
        if not url:
            raise UsageError("which server? give --server URL (remembered after login)")
        return str(url)

    def login(self, required: bool = True) -> str | None:
        name = getattr(self.args, "login", None) or self.config.login
        if required and not name:
            raise UsageError("which account? give --login NAME (remembered after login)")
        return name

    def client(self, login: str | None) -> Client:
        log_key = getattr(self.args, "log_key", None)
        receipt_key = getattr(self.args, "receipt_key", None)
        pins = None
        if log_key or receipt_key:
            if not (log_key and receipt_key):
                raise UsageError("--log-key and --receipt-key go together")
            try:
                pins = Pins.from_b64(log_key, receipt_key)
            except CryptoError as exc:
                raise UsageError(f"--log-key/--receipt-key: {exc}") from exc
        return Client(self.server(), state_dir=self.root, login=login, pins=pins)

    def remember(self, server: str, login: str) -> None:
        self.config.server, self.config.login = server, login
        save_config(self.root, self.config)

    def passphrase(self, prompt: str = "Passphrase: ", *, confirm: bool = False) -> str:
        return self.passphrases.read(
            prompt, getattr(self.args, "passphrase_fd", None), confirm=confirm
        )

    def root_passphrase(self, prompt: str, *, confirm: bool = False) -> str:
        return self.passphrases.read(
            prompt, getattr(self.args, "root_passphrase_fd", None), confirm=confirm
        )

    def emit(self, data: dict[str, Any], lines: Sequence[str]) -> None:
        if self.json:
            self.out.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
        else:
            for line in lines:
                self.out.write(line + "\n")

    def warn(self, text: str) -> None:
        self.err.write(f"WARNING: {text}\n")


Command = Callable[[Ctx], Awaitable[int]]


async def open_keyring(ctx: Ctx, client: Client) -> Keyring:
    """The account's keys, opened with the passphrase (terminal or ``--passphrase-fd``)."""
    return await client.account.open_keys(ctx.passphrase())
