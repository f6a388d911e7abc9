"""A small, scriptable transparency log served over loopback, for the client's unit tests.

It answers the public routes the client's key verification uses (``/api/v1/server``,
``…/transparency/sth|inclusion|consistency``, ``/api/v1/keys/{subject}``) from an in-memory
RFC 9162 tree built with the crypto core, and lets a test misbehave on purpose: fork the
log, withhold a chain's tail, swap a leaf, serve an old head, change its keys. The real
server is tested separately (tests/desk, tests/client/test_live.py); this is the outer edge
the key-verification logic is checked against, case by case.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from postbox.crypto import certs
from postbox.crypto.encoding import b64e, cj
from postbox.crypto.logevents import EventType, LogEvent, event_hash, next_event
from postbox.crypto.primitives import H, sign_keypair
from postbox.crypto.transparency import make_tree_head, sign_tree_head
from postbox.keys.merkle import MemoryTree
from support.world import NOW, seed


@dataclass
class FakeLog:
    log_seed: bytes = field(default_factory=lambda: seed("fake-log"))
    receipt_seed: bytes = field(default_factory=lambda: seed("fake-receipt"))
    now: int = NOW
    tree: MemoryTree = field(default_factory=MemoryTree)
    leaves: list[bytes] = field(default_factory=list)
    chains: dict[str, list[tuple[int, LogEvent]]] = field(default_factory=dict)
    #: misbehaviour: serve heads of this size (None: the whole tree)
    head_size: int | None = None
    #: misbehaviour: serve only the first n events of these subjects
    withhold: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        log_pk, _ = sign_keypair(self.log_seed)
        receipt_pk, _ = sign_keypair(self.receipt_seed)
        key = certs.make_server_key(log_pk=log_pk, receipt_pk=receipt_pk, created=self.now)
        self.server_id = b64e(H(log_pk, 16))
        self.append(self.server_id, "server_key", {"server_key": key, "org": None, "sig": None})

    @property
    def log_pk(self) -> bytes:
        return sign_keypair(self.log_seed)[0]

    def append(self, subject: str, type: EventType, body: Any, ts: int | None = None) -> LogEvent:
        chain = self.chains.setdefault(subject, [])
        previous = chain[-1][1] if chain else None
        event = next_event(previous, subject=subject, type=type, ts=ts or self.now, body=body)
        leaf = cj(event)
        index = self.tree.append(leaf)
        self.leaves.append(leaf)
        chain.append((index, event))
        return event

    def fork(self) -> FakeLog:
        """An independent copy: appends to it make a log that diverges from this one."""
        other = FakeLog(self.log_seed, self.receipt_seed, self.now)
        other.tree = MemoryTree()
        other.tree.extend(self.leaves)
        other.leaves = list(self.leaves)
        other.chains = copy.deepcopy(self.chains)
        return other

    def size(self) -> int:
        return self.head_size or self.tree.size

    def sth(self, size: int | None = None) -> dict[str, Any]:
        n = size or self.size()
        head = make_tree_head(size=n, root=self.tree.root(n), ts=self.now)
        return dict(sign_tree_head(head, self.log_seed))

    def keys(self, subject: str) -> dict[str, Any] | None:
        chain = self.chains.get(subject)
        if not chain:
            return None
        n = self.size()
        served = [(i, e) for i, e in chain if i < n][: self.withhold.get(subject)]
        head = self.sth(n)
        return {
            "sth": head["sth"],
            "sig": head["sig"],
            "events": [
                {
                    "index": i,
                    "leaf": b64e(cj(e)),
                    "path": [b64e(h) for h in self.tree.inclusion_proof(i, n)],
                }
                for i, e in served
            ],
        }

    def last_hash(self, subject: str) -> bytes:
        return event_hash(self.chains[subject][-1][1])


def _not_found() -> web.Response:
    return web.json_response(
        {"type": "urn:postbox:problem:not-found", "status": 404, "detail": "no such subject"},
        status=404,
        content_type="application/problem+json",
    )


@dataclass
class FakeServer:
    log: FakeLog
    url: str = ""
    #: replace the log being served (a server that switches to a fork)
    serving: FakeLog | None = None
    announce_log_pk: bytes | None = None

    @property
    def current(self) -> FakeLog:
        return self.serving or self.log

    def app(self) -> web.Application:
        app = web.Application()

        async def server(request: web.Request) -> web.Response:
            log = self.current
            return web.json_response(
                {
                    "origin": f"http://{request.host}",
                    "version": "test",
                    "log_pk": b64e(self.announce_log_pk or log.log_pk),
                    "receipt_pk": b64e(sign_keypair(log.receipt_seed)[0]),
                    "argon2": {"ops": 2, "mem": 64 * 1024 * 1024},
                    "limits": {
                        "json_bytes": 262144,
                        "message_bytes": 4194304,
                        "blob_bytes": 1107583512,
                        "part_bytes": 8388608,
                        "quota_bytes": 4294967296,
                    },
                }
            )

        async def sth(request: web.Request) -> web.Response:
            return web.json_response(self.current.sth())

        async def inclusion(request: web.Request) -> web.Response:
            index, size = int(request.query["index"]), int(request.query["size"])
            log = self.current
            return web.json_response(
                {
                    "index": index,
                    "size": size,
                    "leaf": b64e(log.leaves[index]),
                    "path": [b64e(h) for h in log.tree.inclusion_proof(index, size)],
                }
            )

        async def consistency(request: web.Request) -> web.Response:
            first, second = int(request.query["first"]), int(request.query["second"])
            proof = self.current.tree.consistency_proof(first, second)
            return web.json_response(
                {"first": first, "second": second, "path": [b64e(h) for h in proof]}
            )

        async def keys(request: web.Request) -> web.Response:
            body = self.current.keys(request.match_info["subject"])
            return _not_found() if body is None else web.json_response(body)

        app.router.add_get("/api/v1/server", server)
        app.router.add_get("/api/v1/transparency/sth", sth)
        app.router.add_get("/api/v1/transparency/inclusion", inclusion)
        app.router.add_get("/api/v1/transparency/consistency", consistency)
        app.router.add_get("/api/v1/keys/{subject}", keys)
        return app


@asynccontextmanager
async def fake_server(log: FakeLog) -> AsyncIterator[FakeServer]:
    fake = FakeServer(log)
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
