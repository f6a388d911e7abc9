"""Messaging benchmark: ``python bench/messages.py [--smoke] [--profile]``.

A real Postbox server runs in a child process on loopback (``create_app`` behind an
``AppRunner``, exactly what ``postbox serve`` runs), next to a **bare** aiohttp application
in the same child whose one handler reads the body and inserts it as one row (one write
transaction per request, through the same :class:`~postbox.mailbox.db.engine.Database`
machinery, into the same database). This process is the load generator: 32 concurrent
clients (``--clients``), each a citizen with its own session.

Before the child starts, this process onboards an organisation through the real HTTP API
(in-process, ``tests/support/onboard.py``): an org, a team whose key a caseworker made, and
one citizen per client; and it bulk-loads two more citizens' inboxes directly into the
database (100,000 and 100 entries) for the listing comparison. Every envelope a client sends
is sealed (``seal_message``: real keys, real signatures) **before** the timed phase, so the
load generator measures the server. Each round (medians over ``--rounds``):

- ``send``: the clients post their sealed envelopes (citizen → team, 201 each);
- ``bare``: the same clients post bodies of the same size to the bare insert handler;
- ``list``: each client lists its own sent folder (first page, 50 summaries);
- ``fetch``: each client fetches one of its messages (wire, key, receipt, sender's chain);
- ``verify``: the same clients post sealed envelopes to a **verify-only** handler in the
  child (canonical parse, structure, the signer's cached certificate, the signature: what a
  send does before it stores anything; no token, no database). ``verify_only_s`` and
  ``verify_only_ratio`` (= verify_only_s / bare_s) are the ceiling of any send path in one
  server process on this machine: where ``verify_only_ratio`` is below 1.5, no send can
  reach ``send_ratio`` 1.5.

``server_cpu_ms_per_send`` / ``server_cpu_ms_per_bare``: CPU time of the server child (all
its threads) per send and per bare insert, from /proc; ``writer_cpu_ms_per_send``: the part
of it spent on the group-commit writer's thread. ``machine_busy_send``/``machine_busy_bare``:
the share of all cores busy during each phase (/proc/stat: this load generator, the server
and the database together), and ``machine_cpu_ms_per_send``/``…_bare`` that CPU per request.
When a phase keeps the machine busy, its rate is bounded by its CPU per request: then
send_ratio ≈ machine_cpu_ms_per_bare / machine_cpu_ms_per_send, whatever the batching.

Figures per backend (PostgreSQL with the suffix ``_postgresql``): ``send_s``, ``list_s``,
``fetch_s`` (requests/s) with ``*_ms_p50``/``*_ms_p99`` (client-side latency), ``bare_s``,
and ``send_ratio_sqlite`` / ``send_ratio_postgres`` = send_s / bare_s (target ≥ 1.5: group
commit must beat a transaction per request by that much while doing far more per request).
``list_ratio_100k_vs_100`` (and ``…_postgresql``) = median latency of the first page of the
100,000-message inbox ÷ that of the 100-message inbox, measured sequentially (target ≤ 2).
``batch_mean`` is the mean group-commit batch size the server reported.

``--profile`` runs the server child under cProfile and prints where its time went during
the send phase (``POSTBOX_BENCH_PROFILE_OUT=FILE`` keeps the stats). For comparisons the
child reads ``POSTBOX_BENCH_WRITER=thread|loop`` (where the group-commit writer runs),
``POSTBOX_BENCH_PG_CONCURRENCY=N`` (batches in flight on PostgreSQL) and
``POSTBOX_BENCH_SWITCH=SECONDS`` (``sys.setswitchinterval``); ``--only`` runs one backend.
Human lines go to stderr; the last stdout line is one JSON object. Both sides share the
machine (on two cores the client takes about one).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.benchkit import child, cpu_seconds, free_port, log, postgres
from support.onboard import (
    Person,
    add_citizen,
    add_staff,
    create_team,
    init_team,
    new_id,
    setup_org,
)

from postbox.crypto.certs import Cert
from postbox.crypto.encoding import b64e, parse_canonical
from postbox.crypto.envelope import seal_message, verify_signature
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.app import create_app
from postbox.mailbox.appkeys import DB, MESSAGES
from postbox.mailbox.db import schema
from postbox.mailbox.db.engine import Database
from postbox.mailbox.messages import routes as message_routes
from postbox.mailbox.messages import service as message_service
from postbox.mailbox.messages.commands import SendMessage
from postbox.mailbox.settings import Settings

Result = dict[str, object]
PAGE = 50
BIG, SMALL = 100_000, 100

bare_meta = MetaData()
bare_rows = Table(
    "bench_bare_rows",
    bare_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class Config:
    smoke: bool
    clients: int
    seconds: float
    rounds: int
    profile: bool
    big: int
    only: str | None = None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bench_settings(data_dir: Path, db: str, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        db=db,
        port=port,
        login_rate_per_minute=10**9,  # one address does all the onboarding
        access_token_seconds=6 * 3600,  # tokens outlive the run
        sqlite_synchronous="FULL",
    ).validate()


# --- the server child -----------------------------------------------------------------------
async def bare_insert(request: web.Request) -> web.Response:
    """The baseline: read the body, insert it as one row, one transaction, answer 201."""
    body = await request.read()
    async with request.app[BARE_DB].write() as conn:
        result = await conn.execute(bare_rows.insert().values(body=body))
    key = result.inserted_primary_key
    return web.json_response({"id": None if key is None else key[0]}, status=201)


BARE_DB = web.AppKey("bare_db", Database)


async def verify_only(request: web.Request) -> web.Response:
    """The ceiling of any send in one process: what the send route does before it stores
    anything (canonical parse, the envelope's structure, the signer's cached certificate,
    the signature), no token, no database, no receipt."""
    body = await request.read()
    cmd = SendMessage.of(parse_canonical(body), body)
    service = request.app[SERVER][MESSAGES]
    cert = await service._signing_cert(cmd.wire["header"]["sender_kid"])
    assert cert is not None
    digest = verify_signature(cmd.wire, cert)
    return web.json_response({"digest": b64e(digest)}, status=201)


async def batch_sizes(request: web.Request) -> web.Response:
    commit = request.app[SERVER][MESSAGES].commit
    return web.json_response({"sizes": commit.batch_sizes, "writer": commit.native_id})


SERVER = web.AppKey("server", web.Application)


async def serve_child(data_dir: Path, db: str, port: int, bare_port: int, profile: str) -> None:
    writer = os.environ.get("POSTBOX_BENCH_WRITER", "thread")
    message_service.WRITER_THREAD = writer == "thread"
    if os.environ.get("POSTBOX_BENCH_PG_CONCURRENCY"):
        message_routes.WRITER_CONCURRENCY_POSTGRES = int(os.environ["POSTBOX_BENCH_PG_CONCURRENCY"])
    if os.environ.get("POSTBOX_BENCH_SWITCH"):
        sys.setswitchinterval(float(os.environ["POSTBOX_BENCH_SWITCH"]))
    settings = bench_settings(data_dir, db, port)
    app = create_app(settings)
    bare_app = web.Application(client_max_size=settings.max_message_bytes)
    bare_db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    bare_app[BARE_DB] = bare_db
    bare_app[SERVER] = app
    bare_app.router.add_post("/bare", bare_insert)
    bare_app.router.add_post("/verify", verify_only)
    bare_app.router.add_get("/batches", batch_sizes)
    runners = []
    for a, p in ((app, port), (bare_app, bare_port)):
        runner = web.AppRunner(a, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", p).start()
        runners.append(runner)
    profiler = cProfile.Profile() if profile else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if profiler is not None:
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
    print("ready", flush=True)
    await stop.wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    for runner in runners:
        await runner.cleanup()
    await bare_db.dispose()


# --- seeding (in this process, through the real HTTP API) ---------------------------------------
@dataclass
class Seeded:
    team: str
    team_cert: Cert
    senders: list[Person]
    big: Person
    small: Person
    wire_bytes: int = 0


async def seed(settings: Settings, cfg: Config) -> Seeded:
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        now = now_ms()
        org = await setup_org(client, now)
        team = await create_team(client, org)
        worker = await add_staff(client, org, "caseworker", now)
        key = await init_team(client, org, team, worker, now)
        people = [await add_citizen(client, worker, now) for _ in range(cfg.clients + 2)]
        seeded = Seeded(team, key.cert, people[: cfg.clients], people[-2], people[-1])
        sample = seal(seeded, seeded.senders[0])
        seeded.wire_bytes = len(sample)
        await bulk_inbox(app[DB], seeded, sample, cfg.big, seeded.big)
        await bulk_inbox(app[DB], seeded, sample, SMALL, seeded.small)
    return seeded


async def bulk_inbox(db: Database, s: Seeded, wire: bytes, n: int, owner: Person) -> None:
    """``n`` messages from the team to ``owner``, inserted directly (the listing only reads
    entries and their messages' metadata)."""
    sender = s.senders[0].id
    chunk = 5000
    accepted = now_ms()
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        rows = [
            {
                "id": new_id(),
                "from_id": s.team,
                "signer_id": sender,
                "org_id": None,
                "kind": "message",
                "thread_id": None,
                "case_id": None,
                "created": accepted,
                "accepted": accepted + start + i,
                "digest": random_bytes(64),
                "wire": wire,
                "receipt": "{}",
                "size": len(wire),
            }
            for i in range(count)
        ]
        async with db.write() as conn:
            result = await conn.execute(
                schema.messages.insert().returning(
                    schema.messages.c.pk, sort_by_parameter_order=True
                ),
                rows,
            )
            pks = list(result.scalars())
            await conn.execute(
                schema.mailbox_entries.insert(),
                [
                    {
                        "mailbox_id": owner.id,
                        "message_pk": pk,
                        "folder": "inbox",
                        "kind": "message",
                        "thread_id": None,
                        "case_id": None,
                        "accepted": row["accepted"],
                        "read": None,
                        "flagged": False,
                        "moved": None,
                    }
                    for pk, row in zip(pks, rows, strict=True)
                ],
            )


BODY = "Sehr geehrte Damen und Herren, " * 20


def seal(s: Seeded, sender: Person) -> bytes:
    content: dict[str, Any] = {
        "subject": "Verlängerung meines Aufenthaltstitels",
        "body": BODY,
        "format": "text",
        "form": None,
        "attachments": [],
        "in_reply_to": None,
        "sth": {"size": 1, "root": b64e(random_bytes(32))},
    }
    return seal_message(
        content=content,
        message_id=new_id(),
        kind="message",
        from_=sender.id,
        signer=sender.id,
        signer_seed=sender.sign_seed,
        to=[s.team],
        recipients={s.team: s.team_cert, sender.id: sender.enc_cert},
        thread=None,
        case=None,
        created=now_ms(),
    ).body


# --- load -----------------------------------------------------------------------------------
@dataclass
class Phase:
    done: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    def ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_for(seconds: float, workers: list[Callable[[], Awaitable[bool]]]) -> Phase:
    """Run each worker in a loop until the deadline (or until it returns False)."""
    deadline = time.perf_counter() + seconds
    phase = Phase()

    async def loop(work: Callable[[], Awaitable[bool]]) -> int:
        done = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if not await work():
                break
            phase.latencies.append(time.perf_counter() - t0)
            done += 1
        return done

    start = time.perf_counter()
    phase.done = sum(await asyncio.gather(*(loop(w) for w in workers)))
    phase.elapsed = time.perf_counter() - start
    return phase


JSON_HEADERS = {"Content-Type": "application/json"}


async def measure_send(
    http: aiohttp.ClientSession, base: str, s: Seeded, bodies: list[list[bytes]], cfg: Config
) -> tuple[Phase, list[list[str]]]:
    sent: list[list[str]] = [[] for _ in s.senders]

    def worker(i: int) -> Callable[[], Awaitable[bool]]:
        person, queue = s.senders[i], bodies[i]
        headers = {**JSON_HEADERS, **person.headers}

        async def once() -> bool:
            if not queue:
                return False
            body = queue.pop()
            async with http.post(f"{base}/api/v1/messages", data=body, headers=headers) as r:
                answer = await r.read()
                assert r.status == 201, answer
            sent[i].append(json.loads(answer)["receipt"]["message"])
            return True

        return once

    phase = await run_for(cfg.seconds, [worker(i) for i in range(len(s.senders))])
    return phase, sent


async def measure_bare(http: aiohttp.ClientSession, url: str, size: int, cfg: Config) -> Phase:
    body = random_bytes(size)

    async def once() -> bool:
        async with http.post(url, data=body, headers=JSON_HEADERS) as r:
            assert r.status == 201
            await r.read()
        return True

    return await run_for(cfg.seconds, [once] * cfg.clients)


async def measure_verify(
    http: aiohttp.ClientSession, url: str, s: Seeded, bodies: list[list[bytes]], cfg: Config
) -> Phase:
    """The clients post sealed envelopes to the verify-only handler (nothing is stored, so
    the same envelopes serve every request)."""

    def worker(i: int) -> Callable[[], Awaitable[bool]]:
        mine = bodies[i]

        async def once() -> bool:
            body = mine[len(mine) - 1]
            mine.insert(0, mine.pop())
            async with http.post(url, data=body, headers=JSON_HEADERS) as r:
                answer = await r.read()
                assert r.status == 201, answer
            return True

        return once

    return await run_for(cfg.seconds, [worker(i) for i in range(len(s.senders))])


async def measure_reads(
    http: aiohttp.ClientSession,
    s: Seeded,
    urls: Callable[[int], str],
    cfg: Config,
) -> Phase:
    def worker(i: int) -> Callable[[], Awaitable[bool]]:
        headers = s.senders[i].headers

        async def once() -> bool:
            async with http.get(urls(i), headers=headers) as r:
                answer = await r.read()
                assert r.status == 200, answer
            return True

        return once

    return await run_for(cfg.seconds, [worker(i) for i in range(len(s.senders))])


async def list_latency(http: aiohttp.ClientSession, base: str, owner: Person, n: int) -> float:
    """Median latency (ms) of the first inbox page, ``n`` sequential requests."""
    url = f"{base}/api/v1/mailboxes/{owner.id}/messages?folder=inbox&limit={PAGE}"
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url, headers=owner.headers) as r:
            answer = await r.read()
            assert r.status == 200, answer
            assert len(json.loads(answer)["messages"]) == PAGE
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def server(
    data_dir: Path, db: str, port: int, bare_port: int, profile: str
) -> AbstractAsyncContextManager[int]:
    """The server child (this file with ``--child``) until it is ready; yields its pid."""
    args = [str(data_dir), db, str(port), str(bare_port), profile]
    return child([sys.executable, __file__, "--child", *args])


async def start_spy(pid: int, seconds: float) -> asyncio.subprocess.Process | None:
    """``POSTBOX_BENCH_SPY=FILE``: sample the server child with py-spy (if installed) during
    the send phase, all threads, into FILE (raw collapsed stacks)."""
    out = os.environ.get("POSTBOX_BENCH_SPY")
    spy = shutil.which("py-spy")
    if not out or spy is None:
        return None
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "-p",
        str(pid),
        "-o",
        out,
        "-f",
        "raw",
        "--threads",
        "--nonblocking",
        "--gil",
        "-r",
        "200",
        "-d",
        str(max(1, int(seconds))),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (Linux /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def machine_share(
    before: tuple[float, float], after: tuple[float, float], done: int
) -> tuple[float, float]:
    """(fraction of all cores busy, machine CPU ms per request) between two samples."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return (busy / total if total else 0.0), busy * 1000 / max(1, done)


def thread_cpu_seconds(pid: int, tid: int | None) -> float:
    """CPU time of one thread of the server (Linux /proc; 0 elsewhere)."""
    if tid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_lines(path: str, top: int = 30) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue().splitlines()


async def bench_backend(name: str, db: str, data_dir: Path, cfg: Config) -> Result:
    port, bare_port = free_port(), free_port()
    settings = bench_settings(data_dir, db, port)
    t0 = time.perf_counter()
    s = await seed(settings, cfg)
    log(
        f"{name}: seeded {len(s.senders)} senders and {cfg.big + SMALL} bulk messages "
        f"in {time.perf_counter() - t0:.1f} s (wire {s.wire_bytes} bytes)"
    )
    base = f"http://127.0.0.1:{port}"
    bare_url = f"http://127.0.0.1:{bare_port}/bare"
    profile = str(data_dir / "server.prof") if cfg.profile else ""
    sends: list[Phase] = []
    bares: list[Phase] = []
    lists: list[Phase] = []
    fetches: list[Phase] = []
    batch_means: list[float] = []
    send_cpu: list[float] = []
    bare_cpu: list[float] = []
    writer_cpu: list[float] = []
    bare_machine: list[tuple[float, float]] = []
    verifies: list[Phase] = []
    send_machine: list[tuple[float, float]] = []
    per_client = int(4000 * cfg.seconds / cfg.clients) + 50
    async with server(data_dir, db, port, bare_port, profile) as pid:
        # the bare table lives in the same database as everything else
        async with Database(settings.database_url).write() as conn:
            await conn.run_sync(bare_meta.create_all)
        connector = aiohttp.TCPConnector(limit=cfg.clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            warm = Config(cfg.smoke, cfg.clients, min(cfg.seconds, 0.5), 1, False, cfg.big)
            await measure_bare(http, bare_url, s.wire_bytes, warm)
            await measure_send(
                http, base, s, [[seal(s, p) for _ in range(30)] for p in s.senders], warm
            )
            for _ in range(cfg.rounds):
                bodies = [[seal(s, p) for _ in range(per_client)] for p in s.senders]
                verify = await measure_verify(
                    http,
                    f"http://127.0.0.1:{bare_port}/verify",
                    s,
                    [b[:20] for b in bodies],
                    cfg,
                )
                verifies.append(verify)
                cpu0, m0 = cpu_seconds(pid), machine_cpu()
                bare = await measure_bare(http, bare_url, s.wire_bytes, cfg)
                bares.append(bare)
                bare_cpu.append((cpu_seconds(pid) - cpu0) * 1000 / max(1, bare.done))
                bare_machine.append(machine_share(m0, machine_cpu(), bare.done))
                if cfg.profile:
                    os.kill(pid, signal.SIGUSR1)
                spy = await start_spy(pid, cfg.seconds)
                async with http.get(f"http://127.0.0.1:{bare_port}/batches") as r:
                    tid = (await r.json())["writer"]
                cpu0, writer0 = cpu_seconds(pid), thread_cpu_seconds(pid, tid)
                m0 = machine_cpu()
                phase, sent = await measure_send(http, base, s, bodies, cfg)
                send_machine.append(machine_share(m0, machine_cpu(), phase.done))
                writer_cpu.append(
                    (thread_cpu_seconds(pid, tid) - writer0) * 1000 / max(1, phase.done)
                )
                if spy is not None:
                    await spy.wait()
                send_cpu.append((cpu_seconds(pid) - cpu0) * 1000 / max(1, phase.done))
                if cfg.profile:
                    os.kill(pid, signal.SIGUSR2)
                sends.append(phase)
                async with http.get(f"http://127.0.0.1:{bare_port}/batches") as r:
                    sizes = (await r.json())["sizes"]
                recent = sizes[-min(len(sizes), 64) :]
                batch_means.append(statistics.mean(recent) if recent else 0.0)
                lists.append(
                    await measure_reads(
                        http,
                        s,
                        lambda i: (
                            f"{base}/api/v1/mailboxes/{s.senders[i].id}/messages"
                            f"?folder=sent&limit={PAGE}"
                        ),
                        cfg,
                    )
                )
                fetch_urls = [
                    f"{base}/api/v1/mailboxes/{p.id}/messages/{p.id}/{ids[0]}"
                    for p, ids in zip(s.senders, sent, strict=True)
                ]
                fetches.append(await measure_reads(http, s, fetch_urls.__getitem__, cfg))
            n = 20 if cfg.smoke else 200
            await list_latency(http, base, s.small, 5)
            small = await list_latency(http, base, s.small, n)
            await list_latency(http, base, s.big, 5)
            big = await list_latency(http, base, s.big, n)

    def med(phases: list[Phase], f: Callable[[Phase], float]) -> float:
        return round(statistics.median(f(p) for p in phases), 2)

    result: Result = {
        "send_s": med(sends, lambda p: p.rate),
        "send_ms_p50": med(sends, lambda p: p.ms(0.5)),
        "send_ms_p99": med(sends, lambda p: p.ms(0.99)),
        "bare_s": med(bares, lambda p: p.rate),
        "bare_ms_p50": med(bares, lambda p: p.ms(0.5)),
        "list_s": med(lists, lambda p: p.rate),
        "list_ms_p50": med(lists, lambda p: p.ms(0.5)),
        "list_ms_p99": med(lists, lambda p: p.ms(0.99)),
        "fetch_s": med(fetches, lambda p: p.rate),
        "fetch_ms_p50": med(fetches, lambda p: p.ms(0.5)),
        "fetch_ms_p99": med(fetches, lambda p: p.ms(0.99)),
        "batch_mean": round(statistics.median(batch_means), 1),
        "server_cpu_ms_per_send": round(statistics.median(send_cpu), 3),
        "server_cpu_ms_per_bare": round(statistics.median(bare_cpu), 3),
        "writer_cpu_ms_per_send": round(statistics.median(writer_cpu), 3),
        # the whole machine (load generator, server, database): how busy, CPU per request
        "machine_busy_send": round(statistics.median(b for b, _ in send_machine), 3),
        "machine_busy_bare": round(statistics.median(b for b, _ in bare_machine), 3),
        "machine_cpu_ms_per_send": round(statistics.median(c for _, c in send_machine), 3),
        "machine_cpu_ms_per_bare": round(statistics.median(c for _, c in bare_machine), 3),
        "list_ms_p50_100": round(small, 2),
        "list_ms_p50_100k": round(big, 2),
        "list_ratio_100k_vs_100": round(big / small, 3),
    }
    send_s, bare_s = med(sends, lambda p: p.rate), med(bares, lambda p: p.rate)
    result["send_ratio"] = round(send_s / bare_s, 3) if bare_s else 0.0
    verify_s = med(verifies, lambda p: p.rate)
    result["verify_only_s"] = verify_s
    # no send in one server process can beat what only its parse and signature check reach
    result["verify_only_ratio"] = round(verify_s / bare_s, 3) if bare_s else 0.0
    log(
        f"{name}: send {result['send_s']}/s (p50 {result['send_ms_p50']} ms, p99 "
        f"{result['send_ms_p99']} ms, batch ~{result['batch_mean']}, server CPU "
        f"{result['server_cpu_ms_per_send']} ms/send of which writer "
        f"{result['writer_cpu_ms_per_send']} ms, machine {result['machine_cpu_ms_per_send']} ms "
        f"at {result['machine_busy_send']:.0%} busy, vs {result['server_cpu_ms_per_bare']} "
        f"ms/insert, machine {result['machine_cpu_ms_per_bare']} ms at "
        f"{result['machine_busy_bare']:.0%} busy), bare insert "
        f"{result['bare_s']}/s → ratio {result['send_ratio']} (verify-only handler "
        f"{result['verify_only_s']}/s, ratio {result['verify_only_ratio']}); list "
        f"{result['list_s']}/s "
        f"(p50 {result['list_ms_p50']} ms), fetch {result['fetch_s']}/s (p50 "
        f"{result['fetch_ms_p50']} ms); first page 100k vs 100: {big:.2f} / {small:.2f} ms"
    )
    if cfg.profile:
        for line in profile_lines(profile):
            log(line)
        keep = os.environ.get("POSTBOX_BENCH_PROFILE_OUT")
        if keep:
            await asyncio.to_thread(shutil.copyfile, profile, keep)
    return result


async def run(cfg: Config) -> Result:
    result: Result = {"bench": "messages", "smoke": cfg.smoke, "clients": cfg.clients}
    with tempfile.TemporaryDirectory(prefix="postbox-bench-") as tmp:
        sqlite_dir = Path(tmp) / "sqlite"
        sqlite_url = f"sqlite+aiosqlite:///{sqlite_dir / 'postbox.db'}"
        if cfg.only in (None, "sqlite"):
            figures = await bench_backend("sqlite", sqlite_url, sqlite_dir, cfg)
            result.update(figures)
            result["send_ratio_sqlite"] = figures["send_ratio"]
            del result["send_ratio"]
        if cfg.only == "sqlite":
            return result
        async with postgres() as pg_url:
            if pg_url is not None:
                figures = await bench_backend("postgresql", pg_url, Path(tmp) / "pg", cfg)
                result["send_ratio_postgres"] = figures.pop("send_ratio")
                result.update({f"{k}_postgresql": v for k, v in figures.items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the server's sends")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one backend only")
    parser.add_argument(
        "--child", nargs=5, metavar=("DATA_DIR", "DB", "PORT", "BARE_PORT", "PROFILE")
    )
    args = parser.parse_args()
    if args.child:
        data_dir, db, port, bare_port, profile = args.child
        asyncio.run(serve_child(Path(data_dir), db, int(port), int(bare_port), profile))
        return
    cfg = Config(args.smoke, args.clients, args.seconds, args.rounds, args.profile, BIG, args.only)
    if args.smoke:
        cfg = Config(True, 8, 0.3, 1, args.profile, 2_000, args.only)
    print(json.dumps(asyncio.run(run(cfg)), sort_keys=True))


if __name__ == "__main__":
    main()
