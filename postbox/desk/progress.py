"""Progress bars for attachment uploads and downloads (``rich``, on standard error).

Bars appear only for a person at a terminal: never with ``--json`` (scripts read standard
output and must not get terminal escapes anywhere) and never when standard error is not a
TTY (a pipe, a log file, a test). Disabled bars cost nothing: the callbacks still count,
so a command can report totals either way.

Usage::

    with Transfers(ctx.err, enabled=ctx.progress_enabled) as transfers:
        bar = transfers.bar("upload", "scan.pdf", total=size)
        ref = await client.attachments.upload(..., progress=bar)

A :class:`Bar` is a callable taking the bytes done so far (``bar(done)``); ``bar(done,
total)`` also sets the total once it is known (a download learns the length from the
server), and :meth:`Bar.advance` adds a delta for libraries that report increments.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def progress_wanted(err: TextIO, *, as_json: bool) -> bool:
    """Whether to draw bars: a terminal on ``err`` and no ``--json``."""
    if as_json:
        return False
    isatty = getattr(err, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Bar:
    """One transfer: counts bytes and, when enabled, moves its bar."""

    def __init__(self, progress: Progress | None, task: TaskID | None, total: int | None) -> None:
        self._progress = progress
        self._task = task
        self.total = total
        self.done = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report ``done`` bytes so far (absolute), and the total when it became known."""
        if total is not None:
            self.total = total
        self.done = max(self.done, done)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.done, total=self.total)

    def advance(self, delta: int) -> None:
        """Report ``delta`` more bytes."""
        self(self.done + delta)

    def finish(self) -> None:
        if self.total is not None:
            self(self.total)


class Transfers:
    """A group of bars drawn together while the ``with`` block runs (see the module docs)."""

    def __init__(self, err: TextIO, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=err, stderr=True),
                transient=False,
            )

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def bar(self, verb: str, name: str, total: int | None = None) -> Bar:
        """A new bar labelled ``verb name`` (control characters of ``name`` removed)."""
        if self._progress is None:
            return Bar(None, None, total)
        label = f"{verb} {printable(name)}"
        return Bar(self._progress, self._progress.add_task(label, total=total), total)

    def __enter__(self) -> Transfers:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` without control characters, bidi controls shown visibly (PROTOCOL.md §6);
    ``multiline`` keeps line feeds and tabs (a message body)."""
    out = []
    for ch in text:
        code = ord(ch)
        if multiline and ch in "\n\t":
            out.append(ch)
            continue
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            continue
        if code in _BIDI:
            out.append(f"<U+{code:04X}>")
            continue
        out.append(ch)
    return "".join(out)


_BIDI = frozenset(
    [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)  # ALM, LRM, RLM, LRE…RLO, LRI…PDI


__all__ = ["Bar", "Transfers", "printable", "progress_wanted"]
