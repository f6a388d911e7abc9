"""Attachment benchmark: ``python bench/attachments.py [--smoke] [--size-mib N]``.

A real ``postbox serve`` runs in a child process on loopback (SQLite, its own data
folder); this process is the client. One account is seeded directly (auth key from random
bytes, no Argon2id) and logs in over HTTP. Then, timed:

- **upload**: ``postbox.client.attachments.upload`` of a file of ``--size-mib`` MiB
  (1 GiB by default): read, padded, encrypted as a secretstream blob, cut into the
  server's parts (8 MiB), each checksummed and PUT, then completed (the server hashes the
  blob once);
- **download**: ``postbox.client.attachments.download`` of the same attachment into a
  new file: streamed, decrypted, its framing, padding and hash verified, fsynced, renamed.

The baseline, in the same run and on the same disk: a tiny aiohttp server (another child
process: this file with ``--baseline-child``) that streams a PUT body to a file (fsync at
the end, as durable as the parts) and serves it back with ``FileResponse``; the same bytes
go up from disk and come down to disk with a plain aiohttp client, no crypto.

Figures (MB = 10^6 bytes of the file):

- ``upload_mb_s``, ``download_mb_s``: file bytes per second of each direction;
- ``attachment_mb_s``: both directions together (2 * size / (upload + download time));
- ``baseline_mb_s``: the same for the plain baseline;
- ``attachment_ratio``: attachment_mb_s / baseline_mb_s (target ≥ 0.5);
- ``server_rss_growth_mib``: the Postbox server's peak VmRSS during both transfers minus
  its VmRSS just before (from /proc; target < 64);
- ``client_cpu_s_per_gib``, ``server_cpu_s_per_gib``: CPU seconds (user + system) per GiB
  moved up and down, of this process and of the server: a figure that depends less on
  what else the machine is doing than the rates do;
- ``size_mib``, ``smoke``, ``rounds``: each figure is the median of ``--rounds`` (3)
  alternating runs of the baseline and of Postbox, the ratio that of the medians (the runs'
  combined rates are listed in ``attachment_mb_s_runs`` and ``baseline_mb_s_runs``);
  ``server_rss_growth_mib`` is the largest growth of any run;
- ``crypto_floor_cpu_s_per_gib``, ``crypto_ceiling_mb_s``, ``crypto_ceiling_ratio`` (and
  ``blake2b_mb_s``, ``blake2b_keyed_mb_s``, ``push_mb_s``, ``pull_mb_s``): the crypto a round
  trip must do (five BLAKE2b passes, secretstream both ways), timed on one core in the
  same run, the best combined rate it allows on two cores with zero other cost, and that
  rate over the baseline's: ``attachment_ratio`` cannot exceed ``crypto_ceiling_ratio``;
- ``baseline_cpu_s_per_gib``: CPU seconds of the baseline (client and server) per GiB
  moved up and down; ``ideal_mb_s`` / ``ideal_ratio``: the rate (and ratio) of a path that
  did the baseline's work plus the crypto floor and nothing else, with both cores busy.

Human lines go to stderr; the last stdout line is one JSON object. Client and server
share the machine's cores, as do the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nacl.bindings as sodium
from aiohttp import web
from nacl.bindings.crypto_secretstream import crypto_secretstream_xchacha20poly1305_state

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.benchkit import child, cpu_seconds, free_port, log

from postbox.client.attachments import download, upload
from postbox.client.session import Session
from postbox.client.state import StateStore
from postbox.crypto.attachment import CHUNK_BYTES
from postbox.crypto.bundle import (
    DEFAULT_MEM,
    DEFAULT_OPS,
    DERIVED_BYTES,
    build_private_keys,
    keys_from_output,
    seal_bundle,
)
from postbox.crypto.encoding import ID_BYTES, SALT_BYTES, b64d, b64e
from postbox.crypto.login import sign_login
from postbox.crypto.primitives import random_bytes
from postbox.crypto.recovery import generate_recovery_key, seal_recovery_bundle
from postbox.mailbox.accounts.service import AccountService
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.secrets import load_secrets
from postbox.mailbox.settings import Settings

MIB = 1024 * 1024
CHUNK = MIB
LOGIN = "bench@example.org"
Result = dict[str, object]


def vm_rss_mib(pid: int) -> float:
    """Resident set size of a process (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(8 * MIB, left)
            f.write(os.urandom(n))
            left -= n


# --- processes --------------------------------------------------------------------------------
async def _healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not become healthy")


# --- the Postbox side -------------------------------------------------------------------------
async def seed_account(settings: Settings) -> tuple[str, bytes]:
    """One citizen account (through AccountService.create); returns (id, auth seed)."""
    secrets = load_secrets(settings.secrets_dir)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        await upgrade(db)
        pks = build_private_keys(
            gen=1, identity=[random_bytes(32)], encrypt=[(random_bytes(32), None)]
        )
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
        async with db.write() as conn:
            await AccountService(secrets).create(
                conn,
                account_id=account,
                kind="citizen",
                org_id=None,
                login=LOGIN,
                identity_verified=True,
                language="de",
                auth_pk=keys.auth_pk,
                recovery_auth_pk=rkeys.auth_pk,
                pass_bundle=dict(pb),
                recovery_bundle=dict(rb),
                now=int(time.time() * 1000),
            )
    finally:
        await db.dispose()
    return account, keys.auth_seed


async def log_in(session: Session, account: str, auth_seed: bytes) -> None:
    from postbox.crypto.primitives import sign_keypair

    challenge = await session.call("POST", "/api/v1/auth/challenge", {"login": LOGIN}, auth=False)
    signature = sign_login(
        auth_seed, b64d(challenge["challenge"], 32), session.origin, LOGIN, "pass"
    )
    grant = await session.call(
        "POST",
        "/api/v1/auth/login",
        {
            "login": LOGIN,
            "challenge": challenge["challenge"],
            "auth_pk": b64e(sign_keypair(auth_seed)[0]),
            "signature": b64e(signature),
            "method": "pass",
        },
        auth=False,
    )
    session.set_tokens(grant)
    assert session.state.account == account


class RssPeak:
    """Samples a process's VmRSS while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, vm_rss_mib(self.pid))
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssPeak:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, vm_rss_mib(self.pid))


async def bench_postbox(tmp: Path, src: Path, size: int) -> Result:
    data_dir = tmp / "postbox"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite+aiosqlite:///{data_dir / 'postbox.db'}"
    env = {
        "POSTBOX_DATA_DIR": str(data_dir),
        "POSTBOX_DB": db,
        "POSTBOX_PORT": str(port),
        # a 1 GiB file pads to a blob of 1 GiB + 32 MiB + framing
        "POSTBOX_MAX_BLOB_BYTES": str(2 * 1024 * MIB),
        "POSTBOX_QUOTA_BYTES": str(8 * 1024 * MIB),
    }
    settings = Settings(data_dir=data_dir, db=db, port=port).validate()
    account, auth_seed = await seed_account(settings)
    serve = [sys.executable, "-m", "postbox.cli", "serve"]
    async with child(serve, b"health check", env=env, stop=signal.SIGINT, quiet=True) as pid:
        await _healthy(url)
        session = Session(url, store=StateStore(tmp / "client-state"))
        try:
            await log_in(session, account, auth_seed)
            rss_before = vm_rss_mib(pid)
            with RssPeak(pid) as rss:
                cpu0 = (cpu_seconds(), cpu_seconds(pid))
                t0 = time.perf_counter()
                ref = await upload(session, src, name="bench.bin")
                t1 = time.perf_counter()
                out = await download(
                    session, ref.blob, ref.key, ref.blob_size, ref.hash, tmp / "postbox-copy.bin"
                )
                t2 = time.perf_counter()
                cpu1 = (cpu_seconds(), cpu_seconds(pid))
        finally:
            await session.close()
    if out.stat().st_size != size:
        raise RuntimeError("the downloaded file has another size")
    out.unlink()
    up, down = t1 - t0, t2 - t1
    gib = size / (1024 * MIB)
    return {
        "client_cpu_s_per_gib": round((cpu1[0] - cpu0[0]) / gib, 2),
        "server_cpu_s_per_gib": round((cpu1[1] - cpu0[1]) / gib, 2),
        "upload_mb_s": round(size / up / 1e6, 1),
        "download_mb_s": round(size / down / 1e6, 1),
        "attachment_mb_s": round(2 * size / (up + down) / 1e6, 1),
        "server_rss_before_mib": round(rss_before, 1),
        "server_rss_growth_mib": round(rss.peak - rss_before, 1),
    }


# --- the baseline -----------------------------------------------------------------------------
async def baseline_put(request: web.Request) -> web.Response:
    path: Path = request.app["path"]
    with path.open("wb") as f:
        async for chunk in request.content.iter_chunked(CHUNK):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        stored = f.tell()
    return web.json_response({"stored": stored}, status=201)


async def baseline_get(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app["path"])


def serve_baseline(folder: Path, port: int) -> None:
    app = web.Application()
    app["path"] = folder / "baseline.bin"
    app.router.add_put("/f", baseline_put)
    app.router.add_get("/f", baseline_get)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def bench_baseline(tmp: Path, src: Path, size: int) -> Result:
    folder = tmp / "baseline"
    folder.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/f"
    args = [sys.executable, __file__, "--baseline-child", str(folder), str(port)]
    async with child(args, quiet=True) as pid:
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(600):  # the child prints "ready" just before it listens
                try:
                    async with http.get(url) as resp:
                        await resp.read()
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

            async def body() -> AsyncIterator[bytes]:
                with src.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk

            cpu0 = cpu_seconds() + cpu_seconds(pid)
            t0 = time.perf_counter()
            async with http.put(url, data=body()) as resp:
                assert resp.status == 201, await resp.text()
            t1 = time.perf_counter()
            copy = tmp / "baseline-copy.bin"
            async with http.get(url) as resp:
                with copy.open("wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            t2 = time.perf_counter()
            cpu1 = cpu_seconds() + cpu_seconds(pid)
    if copy.stat().st_size != size:
        raise RuntimeError("the baseline copy has another size")
    copy.unlink()
    up, down = t1 - t0, t2 - t1
    return {
        "baseline_upload_mb_s": round(size / up / 1e6, 1),
        "baseline_download_mb_s": round(size / down / 1e6, 1),
        "baseline_mb_s": round(2 * size / (up + down) / 1e6, 1),
        "baseline_cpu_s_per_gib": round((cpu1 - cpu0) / (size / (1024 * MIB)), 2),
    }


def crypto_floor(blob_bytes: int, sample_mib: int = 64) -> Result:
    """The crypto every round trip of a blob must do, timed on this machine, one core each.

    Per round trip the protocol and the API ask for five BLAKE2b passes over the blob (the
    client's keyed blob hash and plain part checksums on the way up, the server's checks of
    both, the client's blob hash on the way down) and two secretstream passes (encrypt,
    decrypt). With both cores busy and nothing else to do, a round trip cannot be faster
    than half of that CPU time: ``crypto_ceiling_mb_s`` is the best combined rate any
    implementation could reach here, and ``crypto_ceiling_ratio`` (computed in :func:`run`)
    that rate over the baseline's."""
    data = random_bytes(sample_mib * MIB)
    view = memoryview(data)
    n = len(data)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    hashlib.blake2b(view, digest_size=32).digest()
    times["blake2b"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    hashlib.blake2b(view, digest_size=32, key=b"postbox/v1/blob").digest()
    times["blake2b_keyed"] = time.perf_counter() - t0
    state = crypto_secretstream_xchacha20poly1305_state()
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    plain = [data[i : i + CHUNK_BYTES] for i in range(0, n, CHUNK_BYTES)]
    t0 = time.perf_counter()
    chunks = [sodium.crypto_secretstream_xchacha20poly1305_push(state, p) for p in plain]
    times["push"] = time.perf_counter() - t0
    state = crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    t0 = time.perf_counter()
    for chunk in chunks:
        sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk)
    times["pull"] = time.perf_counter() - t0
    per_byte = {name: t / n for name, t in times.items()}
    # the keyed blob hash three times, plain part checksums twice, encrypt and decrypt once
    hashing = 3 * per_byte["blake2b_keyed"] + 2 * per_byte["blake2b"]
    cpu = blob_bytes * (hashing + per_byte["push"] + per_byte["pull"])
    return {
        **{f"{name}_mb_s": round(1 / t / 1e6, 1) for name, t in per_byte.items()},
        "crypto_floor_cpu_s_per_gib": round(cpu * (1024 * MIB) / blob_bytes, 2),
        "crypto_ceiling_mb_s": round(2 * blob_bytes / (cpu / 2) / 1e6, 1),
    }


async def run(size_mib: int, smoke: bool, rounds: int) -> Result:
    """``rounds`` alternating runs of the baseline and of Postbox (tmp folders, one source
    file); each figure is the median over its runs, and the ratio is that of the medians:
    the VM's page cache makes single runs swing (see the module docs)."""
    size = size_mib * MIB
    bases: list[Result] = []
    posts: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="postbox-bench-attachments-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "source.bin"
        make_file(src, size)
        log(f"file: {size_mib} MiB of random bytes; {rounds} round(s)")
        for n in range(rounds):
            round_dir = tmp / f"round-{n}"
            round_dir.mkdir()
            base = await bench_baseline(round_dir, src, size)
            log(
                f"baseline (plain aiohttp, disk to disk): up {base['baseline_upload_mb_s']} "
                f"MB/s, down {base['baseline_download_mb_s']} MB/s, both "
                f"{base['baseline_mb_s']} MB/s"
            )
            post = await bench_postbox(round_dir, src, size)
            log(
                f"postbox (client library, encrypted): up {post['upload_mb_s']} MB/s, "
                f"down {post['download_mb_s']} MB/s, both {post['attachment_mb_s']} MB/s; "
                f"server RSS {post['server_rss_before_mib']} MiB + "
                f"{post['server_rss_growth_mib']} MiB at peak"
            )
            bases.append(base)
            posts.append(post)
            await asyncio.to_thread(shutil.rmtree, round_dir)
    floor = await asyncio.to_thread(crypto_floor, size, 16 if smoke else 64)
    log(
        f"crypto on one core: BLAKE2b {floor['blake2b_mb_s']} MB/s (keyed "
        f"{floor['blake2b_keyed_mb_s']}), secretstream push {floor['push_mb_s']} / pull "
        f"{floor['pull_mb_s']} MB/s: at least {floor['crypto_floor_cpu_s_per_gib']} CPU s per "
        f"GiB round trip, so at most {floor['crypto_ceiling_mb_s']} MB/s on two cores"
    )
    base, post = _medians(bases), _medians(posts)
    post["server_rss_growth_mib"] = max(float(str(p["server_rss_growth_mib"])) for p in posts)
    ratio = round(float(str(post["attachment_mb_s"])) / float(str(base["baseline_mb_s"])), 3)
    log(f"attachment_ratio {ratio} (target >= 0.5), medians of {rounds} round(s)")
    result: Result = {"bench": "attachments", **base, **post}
    result.update({"attachment_ratio": ratio, "size_mib": size_mib, "smoke": smoke})
    result.update(floor)
    result["crypto_ceiling_ratio"] = round(
        float(str(floor["crypto_ceiling_mb_s"])) / float(str(base["baseline_mb_s"])), 3
    )
    # the encrypted path does the baseline's work (files, HTTP) and the crypto on top
    both = float(str(floor["crypto_floor_cpu_s_per_gib"])) + float(
        str(base["baseline_cpu_s_per_gib"])
    )
    gib_bytes = 1024 * MIB
    result["ideal_mb_s"] = round(2 * gib_bytes / (both / 2) / 1e6, 1)
    result["ideal_ratio"] = round(
        float(str(result["ideal_mb_s"])) / float(str(base["baseline_mb_s"])), 3
    )
    log(
        f"baseline CPU {base['baseline_cpu_s_per_gib']} s/GiB + crypto floor "
        f"{floor['crypto_floor_cpu_s_per_gib']} s/GiB on two cores: at most "
        f"{result['ideal_mb_s']} MB/s, a ratio of {result['ideal_ratio']}"
    )
    result["rounds"] = rounds
    result["attachment_mb_s_runs"] = [p["attachment_mb_s"] for p in posts]
    result["baseline_mb_s_runs"] = [b["baseline_mb_s"] for b in bases]
    return result


def _medians(runs: list[Result]) -> Result:
    return {key: round(statistics.median(float(str(r[key])) for r in runs), 2) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a 16 MiB run that only checks it works"
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs (medians)")
    parser.add_argument("--baseline-child", nargs=2, metavar=("FOLDER", "PORT"))
    args = parser.parse_args()
    if args.baseline_child:
        folder, port = args.baseline_child
        serve_baseline(Path(folder), int(port))
        return
    size = 16 if args.smoke else args.size_mib
    rounds = 1 if args.smoke else max(1, args.rounds)
    print(json.dumps(asyncio.run(run(size, args.smoke, rounds)), sort_keys=True))


if __name__ == "__main__":
    main()
