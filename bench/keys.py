"""Key directory and transparency log benchmarks: ``python bench/keys.py [--smoke]``.

Two sections; human-readable lines go to stderr and ONE JSON line with every figure is
printed last on stdout. ``--smoke`` is a small, fast run for ``make test`` (its figures mean
little); the default is the full run for ``make bench``. Nothing here asserts on time.

- **Lookup with inclusion proof** (``lookup_ms_1k``, ``lookup_ms_1m``,
  ``lookup_ratio_1m_vs_1k``): ``GET /api/v1/keys/{subject}`` through the real server
  (``create_app``, aiohttp on loopback, one aiohttp client), for a subject with a two-event
  chain (identity near the middle of the log, encryption key at its end), on a log of
  1,000 leaves and on a log of 1,000,000 leaves. The figure is the median latency of
  sequential requests after a warm-up; each answer is the whole chain with its inclusion
  proofs against the newest tree head, and one answer per log is verified with the client
  code (``verify_keys_response`` + ``replay``). The large log is bulk-loaded straight into
  the database (filler leaves: well-formed events of distinct subjects, not signed; every
  perfect Merkle node computed with ``merkle.Frontier`` in batches and inserted with
  executemany); leaf 0 and the subject's events are real and go through the service. The
  ratio is the SQLite one (the embedded default); PostgreSQL figures carry a suffix.
  ``--smoke`` uses 20,000 leaves for the large log.
- **Appending key events** (``append_leaves_s_sqlite``, ``append_leaves_s_postgresql``):
  leaves per second through ``KeyLog.append``, one write transaction per event,
  sequentially, with real signed events (each account's identity, then its encryption
  key). Signing happens before the clock starts (that is the client's work); the server's
  verification (replay of the subject's chain), the log lock, the leaf, its Merkle nodes
  and the directory rows are all inside.

PostgreSQL runs in a throwaway database on the server of ``POSTBOX_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432``), dropped afterwards; if it is unreachable the
PostgreSQL figures are ``null`` and ``postgresql_skipped`` says why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.db import pg_problem, throwaway_database

from postbox.crypto import certs
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.keystate import replay
from postbox.crypto.logevents import make_event, verify_keys_response
from postbox.crypto.primitives import box_keypair, sign_keypair
from postbox.keys import merkle, store
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import CLOCK, DB, KEYLOG, SECRETS
from postbox.mailbox.db.schema import log_leaves, log_nodes
from postbox.mailbox.settings import Settings

BATCH = 20_000
DAY = 24 * 3600 * 1000
YEAR = 365 * DAY
FILLER_SUBJECT = "FILLERxFILLERxFILLERxA"  # a valid id, replaced in the template


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- databases -----------------------------------------------------------------------------------
@asynccontextmanager
async def database(backend: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL (SQLite in ``folder``, or a throwaway PostgreSQL one)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        return
    async with throwaway_database("postbox_bench_") as url:
        yield url


@asynccontextmanager
async def server(url: str, folder: Path) -> AsyncIterator[tuple[web.Application, str]]:
    """The real server (``create_app``) on a loopback port; yields the app and its base URL."""
    settings = Settings(data_dir=folder / "var", db=url).validate()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield app, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# --- real signed events --------------------------------------------------------------------------
def citizen(label: str, now: int) -> tuple[str, certs.SignedCert, certs.SignedCert]:
    """An account id, its self-signed identity and an encryption certificate."""
    seed = label.encode().ljust(32, b".")[:32]
    account = b64e(merkle.leaf_hash(seed)[:16])
    pk, _ = sign_keypair(seed)
    identity = certs.make_cert(
        subject=account, kind="citizen", org=None, use="sign", pk=pk, created=now - DAY
    )
    epk, _ = box_keypair(merkle.leaf_hash(b"enc" + seed))
    enc = certs.make_cert(
        subject=account, kind="citizen", org=None, use="encrypt", pk=epk, created=now - DAY,
        expires=now + YEAR,
    )  # fmt: skip
    return account, certs.sign_cert(identity, seed), certs.sign_cert(enc, seed)


# --- lookup --------------------------------------------------------------------------------------
async def bulk_load(app: web.Application, size: int, target: dict[str, Any], at: int) -> None:
    """Fill the log up to ``size`` leaves after leaf 0: filler leaves, and the real event
    ``target`` at index ``at``; every perfect node stored, then the size."""
    db, now = app[DB], app[CLOCK]()
    _, body, _ = citizen("filler", now)
    template = cj(
        make_event(subject=FILLER_SUBJECT, seq=0, prev=None, type="identity", ts=now, body=body)
    )
    async with db.read() as conn:
        start = await store.log_size(conn)
        frontier = merkle.Frontier.load(start, await store.nodes(conn, merkle.root_nodes(start)))
    index = start
    while index < size:
        end = min(size, index + BATCH)
        leaves, rows = [], []
        for i in range(index, end):
            if i == at:
                subject, leaf = target["subject"], cj(target)
            else:
                subject = b64e(i.to_bytes(16, "big"))
                leaf = template.replace(FILLER_SUBJECT.encode(), subject.encode(), 1)
            h = merkle.leaf_hash(leaf)
            leaves.append(h)
            rows.append({"idx": i, "subject": subject, "seq": 0, "type": "identity",
                         "leaf": leaf, "leaf_hash": h, "ts": now})  # fmt: skip
        frontier, created = frontier.extend(leaves)
        async with db.write() as conn:
            await conn.execute(log_leaves.insert(), rows)
            await conn.execute(
                log_nodes.insert(),
                [{"level": n.level, "idx": n.index, "hash": h} for n, h in created],
            )
            if end == size:
                await store.set_log_size(conn, size)
        index = end
        if (index - start) % (10 * BATCH) == 0 or index == size:
            say(f"    loaded {index:,} / {size:,} leaves")


async def lookup(backend: str, size: int, requests: int) -> float:
    """Median ms of GET /api/v1/keys/{subject} on a log of ``size`` leaves."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with database(backend, folder) as url, server(url, folder) as (app, base):
            now = app[CLOCK]()
            subject, identity, enc = citizen("lookup-target", now)
            event = make_event(subject=subject, seq=0, prev=None, type="identity", ts=now,
                               body=identity)  # fmt: skip
            started = time.perf_counter()
            await bulk_load(app, size - 1, dict(event), (size - 1) // 2)
            async with app[DB].write() as conn:
                await app[KEYLOG].append(conn, subject=subject, type="key", body=enc, now=now)
            await app[KEYLOG].heads.ensure_head(force=True)
            loaded = time.perf_counter() - started
            say(f"  {backend}: log of {size:,} leaves ready in {loaded:.1f} s")
            async with aiohttp.ClientSession() as http:
                path = f"{base}/api/v1/keys/{subject}"
                async with http.get(path) as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.read()
                chain = verify_keys_response(body, subject, app[SECRETS].log_pk, now=app[CLOCK]())
                assert chain.sth["size"] == size
                assert len(chain.events) == 2
                assert replay(list(chain.events)).current_encryption(now) == enc["cert"]
                for _ in range(max(10, requests // 10)):  # warm-up
                    async with http.get(path) as resp:
                        await resp.read()
                times = []
                for _ in range(requests):
                    t = time.perf_counter()
                    async with http.get(path) as resp:
                        await resp.read()
                    times.append(time.perf_counter() - t)
            median = statistics.median(times) * 1000
            say(f"  {backend}: lookup on {size:,} leaves: median {median:.3f} ms")
            return round(median, 3)


# --- append --------------------------------------------------------------------------------------
async def append_rate(backend: str, accounts: int) -> float:
    """Leaves per second through KeyLog.append, one transaction per event."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with database(backend, folder) as url, server(url, folder) as (app, _):
            keylog, db, clock = app[KEYLOG], app[DB], app[CLOCK]
            people = [citizen(f"append-{i}", clock()) for i in range(accounts)]
            started = time.perf_counter()
            for subject, identity, enc in people:
                async with db.write() as conn:
                    await keylog.append(
                        conn, subject=subject, type="identity", body=identity, now=clock()
                    )
                async with db.write() as conn:
                    await keylog.append(conn, subject=subject, type="key", body=enc, now=clock())
            seconds = time.perf_counter() - started
            rate = round(2 * accounts / seconds, 1)
            say(f"  {backend}: {2 * accounts:,} appends, {rate:,} leaves/s")
            return rate


# --- main ----------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    small, large = 1_000, (20_000 if args.smoke else 1_000_000)
    requests = 30 if args.smoke else 300
    accounts = 50 if args.smoke else 1_000
    problem = await pg_problem()
    backends = ["sqlite"] if problem else ["sqlite", "postgresql"]
    if problem:
        say(f"PostgreSQL parts skipped: {problem}")
    result: dict[str, Any] = {
        "bench": "keys",
        "smoke": args.smoke,
        "lookup_via": "GET /api/v1/keys/{subject}, real server on loopback, aiohttp client",
        "lookup_small_leaves": small,
        "lookup_large_leaves": large,
        "lookup_requests": requests,
        "append_events": 2 * accounts,
        "postgresql_skipped": problem,
    }
    for backend in ["sqlite", "postgresql"]:
        suffix = "" if backend == "sqlite" else "_postgresql"
        if backend not in backends:
            result.update({f"lookup_ms_1k{suffix}": None, f"lookup_ms_1m{suffix}": None,
                           f"lookup_ratio_1m_vs_1k{suffix}": None,
                           f"append_leaves_s_{backend}": None})  # fmt: skip
            continue
        say(f"{backend}:")
        result[f"append_leaves_s_{backend}"] = await append_rate(backend, accounts)
        if backend == "postgresql" and args.no_pg_lookup:
            continue
        ms_small = await lookup(backend, small, requests)
        ms_large = await lookup(backend, large, requests)
        result[f"lookup_ms_1k{suffix}"] = ms_small
        result[f"lookup_ms_1m{suffix}"] = ms_large
        result[f"lookup_ratio_1m_vs_1k{suffix}"] = round(ms_large / ms_small, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small run that checks it works")
    parser.add_argument(
        "--no-pg-lookup", action="store_true", help="skip the PostgreSQL lookup (slow bulk load)"
    )
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
