"""What the benchmarks in ``bench/`` share: stderr lines, ports, CPU time from /proc and a
throwaway PostgreSQL database.

The benchmarks put ``tests/`` on ``sys.path`` (they seed through ``support.onboard`` too)
and import this as ``support.benchkit``.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
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
