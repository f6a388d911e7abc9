"""Background jobs of one server process (garbage collection, retention, the event bus).

Features start their jobs with :meth:`Background.spawn` from their ``start`` hook; the
composition root stops them all before it closes the database. A job that fails is logged
and restarted after a pause, so one bad row cannot stop collection for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("postbox.background")

RESTART_PAUSE_S = 5.0


class Background:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` (a coroutine function, usually an endless loop) until shutdown."""

        async def supervised() -> None:
            while True:
                try:
                    await job()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background job %s failed; restarting", name)
                    await asyncio.sleep(RESTART_PAUSE_S)

        self._tasks.append(asyncio.create_task(supervised(), name=f"postbox:{name}"))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
