"""What the benchmarks in ``bench/`` share: stderr lines, ports, CPU time from /proc and a
throwaway PostgreSQL database.

The benchmarks put ``tests/`` on ``sys.path`` (they seed through ``support.onboard`` too)
and import this as ``support.benchkit``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from support.db import pg_problem, throwaway_database


def log(line: str) -> None:
    """A human line: stderr, so that stdout's last line stays the JSON result."""
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process, all its threads (this one by default; Linux
    /proc for others, 0 elsewhere)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def postgres() -> AsyncIterator[str | None]:
    """A fresh database on :data:`PG` (its SQLAlchemy URL), dropped afterwards; None (and a
    line saying so) when no PostgreSQL answers."""
    problem = await pg_problem()
    if problem is not None:
        log(f"{problem}; SQLite only")
        yield None
        return
    async with throwaway_database("postbox_bench_") as url:
        yield url


@asynccontextmanager
async def child(
    args: list[str],
    ready: bytes = b"ready",
    *,
    env: dict[str, str] | None = None,
    stop: signal.Signals = signal.SIGTERM,
    quiet: bool = False,
    ready_within: float = 120,
) -> AsyncIterator[int]:
    """A child process (a server under test), until a line of its stdout holds ``ready``;
    yields its pid. Its further output is drained; ``stop`` ends it (then SIGKILL after 60 s);
    ``quiet`` drops its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL if quiet else None,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + ready_within
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=ready_within)
            if not line:
                raise RuntimeError(f"{args[:3]} exited before it was ready")
            if ready in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[:3]} did not get ready")
        drain = asyncio.create_task(_drain(proc.stdout))
        yield proc.pid
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.send_signal(stop)
        try:
            await asyncio.wait_for(proc.wait(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
