"""Login benchmark: ``python bench/login.py [--smoke]``.

A real Postbox server runs in a child process on loopback (``create_app`` behind an
``AppRunner``, exactly what ``postbox serve`` runs), next to a bare aiohttp application
whose one handler returns a small JSON body. This process is the load generator: 32
concurrent clients (``--clients``), each logging in as its own account in a loop —
``POST /api/v1/auth/challenge`` then ``POST /api/v1/auth/login`` with a fresh Ed25519
signature. Client-side Argon2id is excluded: accounts are seeded directly through
``AccountService.create`` with auth keys made from random bytes, which the server cannot
tell from Argon2id output.

Figures (rounds alternate bare / login; each figure is the median over rounds):

- ``logins_s``: completed logins per second (each is two HTTP requests and one write
  transaction per request: challenge row, session, refresh token, audit entry);
- ``bare_s``: requests per second of the bare handler with the same client and concurrency;
- ``login_ratio``: ``logins_s / bare_s``;
- ``login_ms_p50``: median client-side time of one login (challenge + login);
- ``server_cpu_ms_per_login``: CPU time the server process spent per login (from /proc):
  a login is two HTTP requests and two write transactions of about 16 SQL statements in
  all, and each statement through SQLAlchemy's async layer costs a few hundred µs of CPU,
  which is most of it.

SQLite is measured always (``logins_s``, ``bare_s``, ``login_ratio``); PostgreSQL too when
one answers at 127.0.0.1:5432 (or ``POSTBOX_TEST_PG``), in the same run, with the suffix
``_postgresql``. Human lines go to stderr; the last stdout line is one JSON object.
Both sides share the machine: on two cores the client and the server get one each, so
``bare_s`` is partly bounded by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.benchkit import child, cpu_seconds, free_port, log, postgres

from postbox.crypto.bundle import (
    DEFAULT_MEM,
    DEFAULT_OPS,
    DERIVED_BYTES,
    DerivedKeys,
    build_private_keys,
    keys_from_output,
    seal_bundle,
)
from postbox.crypto.encoding import ID_BYTES, SALT_BYTES, b64d, b64e
from postbox.crypto.login import sign_login
from postbox.crypto.primitives import random_bytes
from postbox.crypto.recovery import generate_recovery_key, seal_recovery_bundle
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.app import create_app
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.secrets import load_secrets
from postbox.mailbox.settings import Settings

Result = dict[str, object]


@dataclass(frozen=True)
class Config:
    smoke: bool
    clients: int
    seconds: float
    rounds: int


def bench_settings(data_dir: Path, db: str, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        db=db,
        port=port,
        login_rate_per_minute=10**9,  # one address generates all the load
        sqlite_synchronous="FULL",
    ).validate()


# --- the server child -----------------------------------------------------------------------
async def bare(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "bench"})


async def serve_child(data_dir: Path, db: str, port: int, bare_port: int) -> None:
    bare_app = web.Application()
    bare_app.router.add_get("/bare", bare)
    runners = []
    for app, p in ((create_app(bench_settings(data_dir, db, port)), port), (bare_app, bare_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", p).start()
        runners.append(runner)
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


# --- seeding --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    login: str
    keys: DerivedKeys


async def seed_accounts(settings: Settings, n: int) -> list[Seeded]:
    """n accounts through AccountService.create; auth keys from random bytes (no Argon2id)."""
    secrets = load_secrets(settings.secrets_dir)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    service = AccountService(secrets)
    out = []
    try:
        await upgrade(db)
        pks = build_private_keys(
            gen=1, identity=[random_bytes(32)], encrypt=[(random_bytes(32), None)]
        )
        async with db.write() as conn:
            for i in range(n):
                account = b64e(random_bytes(ID_BYTES))
                keys = keys_from_output(random_bytes(DERIVED_BYTES))
                pb = seal_bundle(
                    pks,
                    keys.kek,
                    account,
                    kind="pass",
                    salt=random_bytes(SALT_BYTES),
                    ops=DEFAULT_OPS,
                    mem=DEFAULT_MEM,
                )
                rb, rkeys = seal_recovery_bundle(pks, generate_recovery_key(), account)
                login = f"bench{i}@example.org"
                await service.create(
                    conn,
                    account_id=account,
                    kind="citizen",
                    org_id=None,
                    login=login,
                    identity_verified=True,
                    language="de",
                    auth_pk=keys.auth_pk,
                    recovery_auth_pk=rkeys.auth_pk,
                    pass_bundle=dict(pb),
                    recovery_bundle=dict(rb),
                    now=int(time.time() * 1000),
                )
                out.append(Seeded(login, keys))
    finally:
        await db.dispose()
    return out


# --- load -----------------------------------------------------------------------------------
async def _run_for(seconds: float, workers: list[Any]) -> tuple[int, float, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def loop(work: Any) -> int:
        done = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await work()
            latencies.append(time.perf_counter() - t0)
            done += 1
        return done

    start = time.perf_counter()
    counts = await asyncio.gather(*(loop(w) for w in workers))
    return sum(counts), time.perf_counter() - start, latencies


async def measure_bare(session: aiohttp.ClientSession, url: str, cfg: Config) -> float:
    async def once() -> None:
        async with session.get(url) as resp:
            assert resp.status == 200
            await resp.read()

    n, elapsed, _ = await _run_for(cfg.seconds, [once] * cfg.clients)
    return n / elapsed


async def measure_logins(
    session: aiohttp.ClientSession, base: str, origin: str, accounts: list[Seeded], cfg: Config
) -> tuple[float, float]:
    def worker(account: Seeded) -> Any:
        async def once() -> None:
            async with session.post(
                f"{base}/api/v1/auth/challenge", json={"login": account.login}
            ) as r:
                assert r.status == 200, await r.text()
                ch = (await r.json())["challenge"]
            sig = sign_login(account.keys.auth_seed, b64d(ch, 32), origin, account.login, "pass")
            body = {
                "login": account.login,
                "challenge": ch,
                "auth_pk": b64e(account.keys.auth_pk),
                "signature": b64e(sig),
                "method": "pass",
            }
            async with session.post(f"{base}/api/v1/auth/login", json=body) as r:
                assert r.status == 200, await r.text()
                await r.read()

        return once

    n, elapsed, latencies = await _run_for(cfg.seconds, [worker(a) for a in accounts])
    return n / elapsed, statistics.median(latencies) * 1000


def server(data_dir: Path, db: str, port: int, bare_port: int) -> AbstractAsyncContextManager[int]:
    """The server child (this file with ``--child``) until it is ready; yields its pid."""
    args = [str(data_dir), db, str(port), str(bare_port)]
    return child([sys.executable, __file__, "--child", *args])


async def bench_backend(name: str, db: str, data_dir: Path, cfg: Config) -> Result:
    port, bare_port = free_port(), free_port()
    settings = bench_settings(data_dir, db, port)
    accounts = await seed_accounts(settings, cfg.clients)
    base = f"http://127.0.0.1:{port}"
    bare_url = f"http://127.0.0.1:{bare_port}/bare"
    logins: list[float] = []
    bares: list[float] = []
    p50s: list[float] = []
    cpu_ms: list[float] = []
    async with server(data_dir, db, port, bare_port) as pid:
        connector = aiohttp.TCPConnector(limit=cfg.clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            warm = Config(cfg.smoke, cfg.clients, min(cfg.seconds, 0.5), 1)
            await measure_bare(session, bare_url, warm)
            await measure_logins(session, base, settings.origin, accounts, warm)
            for _ in range(cfg.rounds):
                bares.append(await measure_bare(session, bare_url, cfg))
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                rate, p50 = await measure_logins(session, base, settings.origin, accounts, cfg)
                cpu1, t1 = cpu_seconds(pid), time.perf_counter()
                logins.append(rate)
                p50s.append(p50)
                cpu_ms.append((cpu1 - cpu0) * 1000 / (rate * (t1 - t0)))
    result = {
        "logins_s": round(statistics.median(logins), 1),
        "bare_s": round(statistics.median(bares), 1),
        "login_ms_p50": round(statistics.median(p50s), 2),
        "server_cpu_ms_per_login": round(statistics.median(cpu_ms), 2),
    }
    result["login_ratio"] = round(result["logins_s"] / result["bare_s"], 4)
    log(
        f"{name}: {result['logins_s']} logins/s (p50 {result['login_ms_p50']} ms), "
        f"bare {result['bare_s']} req/s, ratio {result['login_ratio']}"
    )
    return dict(result)


async def run(cfg: Config) -> Result:
    result: Result = {"bench": "login", "smoke": cfg.smoke, "clients": cfg.clients}
    with tempfile.TemporaryDirectory(prefix="postbox-bench-") as tmp:
        sqlite_dir = Path(tmp) / "sqlite"
        sqlite_url = f"sqlite+aiosqlite:///{sqlite_dir / 'postbox.db'}"
        result.update(await bench_backend("sqlite", sqlite_url, sqlite_dir, cfg))
        async with postgres() as pg_url:
            if pg_url is not None:
                figures = await bench_backend("postgresql", pg_url, Path(tmp) / "pg", cfg)
                result.update({f"{k}_postgresql": v for k, v in figures.items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("DATA_DIR", "DB", "PORT", "BARE_PORT"))
    args = parser.parse_args()
    if args.child:
        data_dir, db, port, bare_port = args.child
        asyncio.run(serve_child(Path(data_dir), db, int(port), int(bare_port)))
        return
    cfg = Config(args.smoke, args.clients, args.seconds, args.rounds)
    if args.smoke:
        cfg = Config(True, 8, 0.3, 1)
    print(json.dumps(asyncio.run(run(cfg)), sort_keys=True))


if __name__ == "__main__":
    main()
