"""Where the desk gets passphrases: an interactive prompt, or a file descriptor.

``--passphrase-fd N`` (and ``--root-passphrase-fd N`` for the org root key file) read one
line per passphrase from an already open descriptor: a pipe from a password manager, or a
test. One buffered reader per descriptor is kept, so two prompts on the same descriptor read
two consecutive lines. Without a descriptor the desk asks on the terminal (``getpass``,
no echo), twice for a new passphrase. Passphrases are never taken from arguments or the
environment, where other users and shell histories can see them.
"""

from __future__ import annotations

import getpass
import io
import os
from collections.abc import Callable
from typing import Final

from postbox.client.errors import UsageError

_TRAILING: Final = "\r\n"

Asker = Callable[[str], str]


class Passphrases:
    """Reads passphrases from descriptors or the terminal (see the module docs)."""

    def __init__(self, *, ask: Asker = getpass.getpass) -> None:
        self._ask = ask
        self._readers: dict[int, io.TextIOWrapper] = {}

    def _reader(self, fd: int) -> io.TextIOWrapper:
        reader = self._readers.get(fd)
        if reader is None:
            try:
                os.fstat(fd)
            except OSError as exc:
                raise UsageError(f"file descriptor {fd} is not open") from exc
            reader = io.TextIOWrapper(
                io.FileIO(fd, "rb", closefd=False), encoding="utf-8", newline=""
            )
            self._readers[fd] = reader
        return reader

    def read(self, prompt: str, fd: int | None, *, confirm: bool = False) -> str:
        """One passphrase: the next line of ``fd``, or typed (twice if ``confirm``)."""
        if fd is not None:
            line = self._reader(fd).readline()
            if not line:
                raise UsageError(f"no passphrase left on file descriptor {fd}")
            value = line.rstrip(_TRAILING)
        else:
            try:
                value = self._ask(prompt)
                if confirm and self._ask("Repeat: ") != value:
                    raise UsageError("the two passphrases differ")
            except (EOFError, KeyboardInterrupt) as exc:
                raise UsageError("no passphrase given") from exc
        if not value:
            raise UsageError("the passphrase is empty")
        return value
