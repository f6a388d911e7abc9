"""Crypto benchmarks: ``python bench/crypto.py [--smoke]``.

Each section is a function ``(Config) -> dict`` listed in :data:`SECTIONS`; :func:`main`
runs them in order, prints human-readable lines to stderr and ONE JSON line, the merged
results of every section, last on stdout. ``--smoke`` is a small, fast run for ``make test``
(its figures mean little); the default is the full run for ``make bench``. Nothing here
asserts on time: the figures are reported and read against the issue's targets.

Attachments (PROTOCOL.md §6), on the same random data in the same run:

- ``attachment_ratio``: throughput of our stream (encrypt the file, then decrypt the blob)
  over raw libsodium secretstream throughput (push the file, then pull the chunks). The
  baseline is bare PyNaCl ``crypto_secretstream_xchacha20poly1305_push``/``_pull`` over
  64 KiB chunks and nothing else; ours also pads, frames, and computes the BLAKE2b blob
  hash while encrypting and again while decrypting. Both read the file (and the blob) in
  1 MiB pieces, and the blobs to decrypt are made before the clock starts. Runs alternate
  raw/ours; each figure is a median, the ratio is taken between medians.
- ``attachment_ratio_ceiling``: the best ratio two cores allow. Each phase must hash the
  whole blob in one sequential BLAKE2b, so a phase cannot beat max(cipher, hash) time even
  with the hash on the second core: ceiling = (push + pull) / (max(push, hash) +
  max(pull, hash)), from the medians measured here.
- ``attachment_piped_ratio``: the same, with every chunk piped at once from the encryptor
  into the decryptor (and push → pull for the baseline); the two hashes then share the
  second core with each other and with the cipher.
- ``envelope_ops_s_python`` / ``envelope_ops_s_node``: seal + open per second of a 4 KiB
  message from a team (signed by a caseworker) to two citizen mailboxes, each seal making
  three sealed keys (two recipients and the team's sent copy), each open running every
  recipient check of PROTOCOL.md §5.
- ``argon2id_s_python`` / ``argon2id_s_node``: median seconds of one Argon2id derivation
  with the default parameters (ops 3, 64 MiB), PyNaCl and libsodium.js (WASM).
- ``rss_growth_mib``: peak RSS growth while a 1 GiB file is encrypted and the blob piped,
  chunk by chunk, into the decryptor. It runs in a fresh child process so that what other
  sections allocate cannot hide (or inflate) the peak: ``ru_maxrss`` is a lifetime maximum.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.bindings as sodium

from postbox.crypto import certs, domain, envelope
from postbox.crypto.attachment import CHUNK_BYTES, blob_length
from postbox.crypto.attachment_stream import AttachmentDecryptor, AttachmentEncryptor
from postbox.crypto.bundle import DEFAULT_MEM, DEFAULT_OPS, derive_pass_keys
from postbox.crypto.encoding import b64e
from postbox.crypto.errors import BlobHashMismatch
from postbox.crypto.primitives import box_keypair, sign_keypair

MB = 1_000_000  # MB/s are 10^6 bytes per second
MIB = 1 << 20
Result = dict[str, object]

_PUSH = sodium.crypto_secretstream_xchacha20poly1305_push
_PULL = sodium.crypto_secretstream_xchacha20poly1305_pull
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


@dataclass(frozen=True)
class Config:
    smoke: bool
    repeats: int  # runs of each variant, interleaved
    throughput_bytes: int  # file size of the throughput runs
    piece_bytes: int  # read size: how the file and the blob are fed in
    rss_bytes: int  # file size of the memory run


FULL = Config(
    smoke=False, repeats=5, throughput_bytes=200_000_000, piece_bytes=MIB, rss_bytes=1 << 30
)
SMOKE = Config(
    smoke=True, repeats=1, throughput_bytes=4_000_000, piece_bytes=MIB, rss_bytes=8 * MIB
)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def mb_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / MB, 1)


def idle_percent(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time spent idle over ``seconds`` (Linux; -1 elsewhere)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return -1.0
    return round(100 * (idle1 - idle0) / max(1, total1 - total0), 1)


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- attachments: throughput ---------------------------------------------------------------
class _Timings:
    """Named lists of seconds, reduced to medians."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.runs.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def attachment_throughput(cfg: Config) -> Result:
    size = cfg.throughput_bytes
    idle = idle_percent(0.2 if cfg.smoke else 1.0)
    log(
        f"attachment throughput: {size / MB:.0f} MB, {cfg.repeats} interleaved runs, "
        f"{os.cpu_count()} CPUs, {idle}% idle before the run"
    )
    data = os.urandom(size)
    view = memoryview(data)
    pieces = range(0, size, cfg.piece_bytes)
    last = size - CHUNK_BYTES
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()

    # Blobs to decrypt, made before any clock runs.
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    raw_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    raw_chunks = [
        _PUSH(state, data[i : i + CHUNK_BYTES], None, _TAG_FINAL if i >= last else _TAG_MESSAGE)
        for i in range(0, size, CHUNK_BYTES)
    ]
    writer = AttachmentEncryptor()
    our_blob = b"".join([*writer.update_pieces(data), *writer.finish_pieces()])
    our_pieces = _pieces(our_blob, cfg.piece_bytes)
    del our_blob
    info = writer.result

    def raw_push() -> None:
        st = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_push(st, key)
        for i in range(0, size, CHUNK_BYTES):
            _PUSH(st, data[i : i + CHUNK_BYTES], None, _TAG_FINAL if i >= last else _TAG_MESSAGE)

    def raw_pull() -> None:
        st = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(st, raw_header, key)
        for chunk in raw_chunks:
            _PULL(st, chunk, None)

    def raw_piped() -> None:
        st = sodium.crypto_secretstream_xchacha20poly1305_state()
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(st, key)
        st2 = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(st2, header, key)
        for i in range(0, size, CHUNK_BYTES):
            tag = _TAG_FINAL if i >= last else _TAG_MESSAGE
            _PULL(st2, _PUSH(st, data[i : i + CHUNK_BYTES], None, tag), None)

    def encrypt() -> None:
        encryptor = AttachmentEncryptor()
        for i in pieces:
            encryptor.update_pieces(view[i : i + cfg.piece_bytes])
        for _ in encryptor.finish_pieces():
            pass

    def decrypt() -> None:
        decryptor = AttachmentDecryptor(info.key, info.size, info.hash)
        released = 0
        for piece in our_pieces:
            for plain in decryptor.update_pieces(piece):
                released += len(plain)
        decryptor.finish()
        if released != size:
            raise AssertionError("the stream did not round-trip")

    def piped() -> None:
        encryptor = AttachmentEncryptor()
        # The hash exists only when the writer is done: give the reader a placeholder, so
        # that it opens everything and then fails exactly at the hash comparison.
        decryptor = AttachmentDecryptor(encryptor.key, blob_length(size), bytes(32))
        for i in pieces:
            for part in encryptor.update_pieces(view[i : i + cfg.piece_bytes]):
                decryptor.update_pieces(part)
        for part in encryptor.finish_pieces():
            decryptor.update_pieces(part)
        try:
            decryptor.finish()
        except BlobHashMismatch:
            return
        raise AssertionError("a placeholder hash was accepted")

    hash_pieces = _pieces(data, CHUNK_BYTES)

    def hash_sodium() -> None:
        st = sodium.crypto_generichash_blake2b_init(key=domain.BLOB, digest_size=32)
        for piece in hash_pieces:
            sodium.crypto_generichash_blake2b_update(st, piece)
        sodium.crypto_generichash_blake2b_final(st)

    def hash_hashlib() -> None:
        h = hashlib.blake2b(digest_size=32, key=domain.BLOB)
        for piece in hash_pieces:
            h.update(piece)
        h.digest()

    steps = {
        "raw_push": raw_push,
        "encrypt": encrypt,
        "raw_pull": raw_pull,
        "decrypt": decrypt,
        "raw_piped": raw_piped,
        "piped": piped,
        "hash_sodium": hash_sodium,
        "hash_hashlib": hash_hashlib,
    }
    for step in steps.values():  # warm-up (imports, thread start-up, allocator)
        if step not in (hash_sodium, hash_hashlib):
            _timed(step)
    t = _Timings()
    for run in range(cfg.repeats):
        for name, step in steps.items():
            t.add(name, _timed(step))
        raw = t.runs["raw_push"][-1] + t.runs["raw_pull"][-1]
        ours = t.runs["encrypt"][-1] + t.runs["decrypt"][-1]
        log(
            f"  run {run + 1}: raw push+pull {mb_s(size, raw)} MB/s, attachment "
            f"encrypt+decrypt {mb_s(size, ours)} MB/s (ratio {raw / ours:.3f}); piped "
            f"{mb_s(size, t.runs['raw_piped'][-1])} vs {mb_s(size, t.runs['piped'][-1])} MB/s"
        )
    push, pull = t.median("raw_push"), t.median("raw_pull")
    enc, dec = t.median("encrypt"), t.median("decrypt")
    hashing = t.median("hash_sodium")
    result: Result = {
        "attachment_bytes": size,
        "attachment_mb_s": mb_s(size, enc + dec),
        "attachment_encrypt_mb_s": mb_s(size, enc),
        "attachment_decrypt_mb_s": mb_s(size, dec),
        "raw_secretstream_mb_s": mb_s(size, push + pull),
        "raw_push_mb_s": mb_s(size, push),
        "raw_pull_mb_s": mb_s(size, pull),
        "attachment_ratio": round((push + pull) / (enc + dec), 3),
        "attachment_ratio_ceiling": round(
            (push + pull) / (max(push, hashing) + max(pull, hashing)), 3
        ),
        "attachment_piped_mb_s": mb_s(size, t.median("piped")),
        "raw_piped_mb_s": mb_s(size, t.median("raw_piped")),
        "attachment_piped_ratio": round(t.median("raw_piped") / t.median("piped"), 3),
        "blake2b_sodium_mb_s": mb_s(size, hashing),
        "blake2b_hashlib_mb_s": mb_s(size, t.median("hash_hashlib")),
        "cpus": os.cpu_count(),
        "idle_before_pct": idle,
    }
    log(
        f"  medians: attachment {result['attachment_mb_s']} MB/s (encrypt "
        f"{result['attachment_encrypt_mb_s']}, decrypt {result['attachment_decrypt_mb_s']}) vs "
        f"raw {result['raw_secretstream_mb_s']} MB/s (push {result['raw_push_mb_s']}, pull "
        f"{result['raw_pull_mb_s']}): ratio {result['attachment_ratio']}, ceiling "
        f"{result['attachment_ratio_ceiling']} with BLAKE2b at {result['blake2b_sodium_mb_s']} "
        f"MB/s (hashlib {result['blake2b_hashlib_mb_s']}); piped ratio "
        f"{result['attachment_piped_ratio']}"
    )
    return result


# --- attachments: memory -------------------------------------------------------------------
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _pipe_stream(size: int, block: bytes) -> None:
    """Encrypt ``size`` bytes (``block`` repeated) and pipe the blob into a decryptor.

    The decryptor needs the blob hash up front, which exists only once the writer is done,
    so it gets a placeholder: it must open every chunk, check the padding and fail only at
    the hash comparison in ``finish()``, with ``BlobHashMismatch``.
    """
    encryptor = AttachmentEncryptor()
    decryptor = AttachmentDecryptor(encryptor.key, blob_length(size), bytes(32))
    released = 0
    for i in range(0, size, len(block)):
        data = block if i + len(block) <= size else block[: size - i]
        for part in encryptor.update_pieces(data):
            for plain in decryptor.update_pieces(part):
                released += len(plain)
    for part in encryptor.finish_pieces():
        for plain in decryptor.update_pieces(part):
            released += len(plain)
    try:
        decryptor.finish()
    except BlobHashMismatch:
        pass
    else:
        raise AssertionError("a placeholder hash was accepted")
    if released != size or encryptor.size != blob_length(size):
        raise AssertionError("the stream did not round-trip")


def memory_child(size: int) -> Result:
    block = os.urandom(MIB)
    _pipe_stream(16 * MIB, block)  # warm-up: imports, the hash workers, allocator pools
    before = _peak_rss_mib()
    start = time.perf_counter()
    _pipe_stream(size, block)
    seconds = time.perf_counter() - start
    after = _peak_rss_mib()
    return {
        "rss_bytes": size,
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "rss_growth_mib": round(after - before, 1),
        "rss_pipe_mb_s": mb_s(size, seconds),
    }


def _child_json(argv: list[str]) -> Result:
    """Run a benchmark child process and return the JSON object it prints last."""
    child = subprocess.run(argv, check=True, capture_output=True, text=True)
    result: Result = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def attachment_memory(cfg: Config) -> Result:
    log(f"attachment memory: {cfg.rss_bytes / MIB:.0f} MiB piped encryptor -> decryptor")
    result = _child_json([sys.executable, __file__, "--memory-child", str(cfg.rss_bytes)])
    log(
        f"  peak RSS {result['rss_before_mib']} -> {result['rss_after_mib']} MiB "
        f"(growth {result['rss_growth_mib']} MiB), {result['rss_pipe_mb_s']} MB/s"
    )
    return result


# --- envelopes and Argon2id -----------------------------------------------------------------
def _bench_seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(f"bench/{label}".encode(), digest_size=n).digest()


def envelope_python(cfg: Config) -> Result:
    now = int(time.time() * 1000)
    org = b64e(_bench_seed("org", 16))

    def party(label: str, kind: certs.Kind) -> tuple[str, certs.Cert, bytes, bytes]:
        pid = b64e(_bench_seed(label, 16))
        sk = _bench_seed("enc/" + label)
        pk, _ = box_keypair(sk)
        enc = certs.make_cert(
            subject=pid,
            kind=kind,
            org=None if kind == "citizen" else org,
            use="encrypt",
            pk=pk,
            created=now - 1000,
            expires=now + 10**10,
        )
        return pid, enc, pk, sk

    team, team_enc, _, _ = party("team", "team")
    alice, alice_enc, alice_pk, alice_sk = party("alice", "citizen")
    bob, bob_enc, _, _ = party("bob", "citizen")
    cw_seed = _bench_seed("sign/caseworker")
    caseworker = b64e(_bench_seed("caseworker", 16))
    cw_identity = certs.make_cert(
        subject=caseworker,
        kind="caseworker",
        org=org,
        use="sign",
        pk=sign_keypair(cw_seed)[0],
        created=now - 1000,
    )
    recipients = {team: team_enc, alice: alice_enc, bob: bob_enc}
    keys = {alice_enc["kid"]: (alice_pk, alice_sk)}
    body = "x" * 4096

    def once(i: int) -> None:
        content: dict[str, Any] = {
            "subject": "Bench",
            "body": body,
            "format": "text",
            "form": None,
            "attachments": [],
            "in_reply_to": None,
            "sth": {"size": 1, "root": b64e(_bench_seed("root"))},
        }
        sealed = envelope.seal_message(
            content=content,
            message_id=b64e(_bench_seed(f"m{i}", 16)),
            kind="message",
            from_=team,
            signer=caseworker,
            signer_seed=cw_seed,
            to=[alice, bob],
            recipients=recipients,
            thread=None,
            case=None,
            created=now,
        )
        envelope.open_message(
            sealed.body,
            mailbox=alice,
            keys=keys,
            sender=cw_identity,
            sender_team_org=org,
            sth_check=lambda size, root: None,
        )

    seconds = 0.5 if cfg.smoke else 5.0
    for i in range(20):
        once(i)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once(n)
        n += 1
    ops = n / (time.perf_counter() - start)
    log(f"envelope seal + open (4 KiB, two recipients), Python: {ops:.0f} ops/s")
    return {"envelope_ops_s_python": round(ops)}


def argon2_python(cfg: Config) -> Result:
    runs = 1 if cfg.smoke else 7
    derive_pass_keys("warm-up", _bench_seed("salt", 16), DEFAULT_OPS, DEFAULT_MEM)
    times = []
    for i in range(runs):
        salt = _bench_seed(f"s{i}", 16)
        start = time.perf_counter()
        derive_pass_keys(f"correct horse {i}", salt, DEFAULT_OPS, DEFAULT_MEM)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    log(f"Argon2id ops {DEFAULT_OPS}, {DEFAULT_MEM // MIB} MiB, Python: {median:.3f} s median")
    return {
        "argon2id_s_python": round(median, 3),
        "argon2id_ops": DEFAULT_OPS,
        "argon2id_mem_mib": DEFAULT_MEM // MIB,
    }


def node_section(cfg: Config) -> Result:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crypto_node.mjs")
    args = ["0.5", "1"] if cfg.smoke else ["5", "7"]
    result = _child_json(["node", script, *args])
    log(
        f"envelope seal + open, Node: {result['envelope_ops_s_node']} ops/s; "
        f"Argon2id, Node: {result['argon2id_s_node']} s median"
    )
    return result


# --- driver --------------------------------------------------------------------------------
SECTIONS: list[Callable[[Config], Result]] = [
    attachment_memory,
    attachment_throughput,
    envelope_python,
    argon2_python,
    node_section,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Postbox crypto benchmarks")
    parser.add_argument("--smoke", action="store_true", help="small, fast run for make test")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child), sort_keys=True))
        return 0
    cfg = SMOKE if args.smoke else FULL
    results: Result = {"smoke": cfg.smoke}
    for section in SECTIONS:
        results.update(section(cfg))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
