"""``postbox keys audit URL``: replay a server's whole transparency log over HTTP alone.

The auditor trusts nothing but the pinned log key and what it verified before (its state
file). It talks to the public routes of PROTOCOL.md §7 only, like any outside monitor:

1. **Pins** (``GET /api/v1/server``). The log key comes from ``--log-key``, else from the
   state file, else the key the server announces is trusted on first use and recorded (on
   success). The announced log key (and the receipt key, once recorded) must equal the pins.
2. **Tree head** (``GET /api/v1/transparency/sth``): signed by the pinned log key, at most
   24 h old. If the state file holds an earlier verified head, the new one must extend it:
   the auditor *demands* ``…/consistency?first=old&second=new`` and checks it against both
   roots (:func:`postbox.crypto.transparency.advance`). A smaller or older head, a head of
   the same size with another root, or a proof that does not verify is a fork or a
   rollback, and stops the audit.
3. **Every leaf** (``…/leaves``, pages of 1000, a few pages in flight): each leaf is parsed
   (:func:`postbox.crypto.logevents.parse_leaf`) and fed to
   :class:`postbox.crypto.monitor.Auditor`, which hashes it into a Merkle frontier (O(log n)
   memory) and flags duplicate ``(subject, seq)``, gaps, broken ``prev`` links and time
   going backwards; the recomputed root must equal the signed head's. Leaf 0 must be the
   log's ``server_key`` event naming the pinned log key and the server's receipt key.
4. **Every chain** is replayed (:func:`postbox.crypto.keystate.replay`): certificate
   signatures, org certification against the org root found in the log (the ``org_root``
   event at ``seq`` 0 of the org's chain), team keys and memberships against the org's
   admin keys, rotations, revocations. Org roots must endorse only this server's keys, and
   no key id may be certified for two subjects.
5. **The directory** (``GET /api/v1/keys/{subject}`` for every subject, 8 at a time by
   default): each answer must verify (:func:`postbox.crypto.logevents.verify_keys_response`)
   against a head consistent with the audited one (same size: same root; otherwise a
   consistency proof is demanded, either way round), and must serve exactly the audited
   chain: the same leaves at the same indices, nothing withheld, nothing else. Events
   appended after the audited head are counted, not judged (the next audit covers them).

Leaves are kept on disk while the audit runs (a temporary SQLite file indexed by subject),
so memory stays at the Merkle frontier, one entry per subject and the chain being replayed,
whatever the size of the log.

Exit codes (like ``postbox-desk``): 0 everything verified (the new head is then saved in
the state file), 1 an error (network, timeouts, 5xx, 429: nothing was judged), 2 a usage
error, **3 a verification failure** (the first one is printed loudly on stderr; scripts
must stop on 3). Every finding names its check, a stable code, and where known the leaf
index, subject and seq.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO, cast

import aiohttp

from postbox.client.errors import (
    ClientError,
    RateLimitedError,
    ServerFailure,
    StateError,
    TransportError,
    UsageError,
)
from postbox.client.http import Transport, origin_of, segment
from postbox.client.session import ServerInfo, wall_clock
from postbox.client.state import ClientState, write_private_file
from postbox.crypto import certs, shapes
from postbox.crypto.certs import OrgRoot, SignedCert, SignedServerKey
from postbox.crypto.encoding import KEY_BYTES, b64d, b64e
from postbox.crypto.errors import (
    BadProof,
    BadSignature,
    CryptoError,
    ForkDetected,
    KeyIdMismatch,
    StaleTreeHead,
)
from postbox.crypto.keystate import SubjectState, replay
from postbox.crypto.logevents import LogEvent, event_leaf, parse_leaf, verify_keys_response
from postbox.crypto.monitor import Auditor
from postbox.crypto.primitives import check_sign_pk, equal
from postbox.crypto.transparency import (
    HASH_BYTES,
    TreeHead,
    advance,
    compare_heads,
    consistency_path,
    verify_tree_head,
)
from postbox.keys import merkle

Clock = Callable[[], int]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3

#: leaves asked for per ``…/leaves`` request (the server's page limit)
PAGE_SIZE: Final = 1000
#: leaf pages requested ahead of the one being checked
PREFETCH_PAGES: Final = 4
#: ``GET /api/v1/keys/{subject}`` requests in flight at once
DEFAULT_CONCURRENCY: Final = 8
#: findings kept in the report (all are counted); a broken log may have millions
MAX_FINDINGS: Final = 10_000
#: findings printed in the human summary
SHOWN_FINDINGS: Final = 50

LEAVES_SHAPE = shapes.obj({"leaves": shapes.array(shapes.b64(None), PAGE_SIZE)})

#: codes of the structural findings of :class:`postbox.crypto.monitor.Auditor`
_CHAIN_CODES: Final = {
    "malformed": "malformed-leaf",
    "first_leaf": "first-leaf",
    "duplicate_seq": "duplicate-seq",
    "seq_gap": "seq-gap",
    "broken_link": "broken-link",
    "time": "time-backwards",
}
_CERT_EVENTS: Final = frozenset({"identity", "key", "admin_key"})


# --- findings and the report ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """One verification failure: which check, a stable code, what, and where."""

    #: pin | tree-head | leaves | chain | root | leaf0 | replay | endorsement | kid | directory
    check: str
    code: str
    detail: str
    index: int | None = None
    subject: str | None = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "code": self.code,
            "detail": self.detail,
            "index": self.index,
            "subject": self.subject,
            "seq": self.seq,
        }

    def line(self) -> str:
        where = [
            f"{name} {value}"
            for name, value in (("leaf", self.index), ("subject", self.subject), ("seq", self.seq))
            if value is not None
        ]
        suffix = f" ({', '.join(where)})" if where else ""
        return f"[{self.check}/{self.code}] {self.detail}{suffix}"


def _head_json(head: TreeHead | None) -> dict[str, Any] | None:
    return None if head is None else dict(head)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass
class AuditReport:
    """What an audit checked and found (``to_json`` is the ``--json`` output)."""

    url: str
    log_key: str | None = None
    pinned_by: str | None = None  # "--log-key" | "state file" | "first use"
    server_origin: str | None = None
    head: TreeHead | None = None
    stored_head: TreeHead | None = None
    consistency: str = "none"  # none | first audit | same head | verified
    leaves: int = 0
    root_matches: bool | None = None
    subjects: int = 0
    chains: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    directory_checked: int = 0
    directory_newer_heads: int = 0
    directory_new_events: int = 0
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    error: str | None = None
    error_exit: int = EXIT_ERROR
    state_path: str | None = None
    state_saved: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.findings_total == 0 and self.head is not None

    @property
    def exit_code(self) -> int:
        if self.findings_total:
            return EXIT_FAILED
        if self.error is not None:
            return self.error_exit
        return EXIT_OK if self.head is not None else EXIT_ERROR

    def add(self, finding: Finding) -> None:
        self.findings_total += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit": self.exit_code,
            "url": self.url,
            "server_origin": self.server_origin,
            "log_key": self.log_key,
            "pinned_by": self.pinned_by,
            "head": _head_json(self.head),
            "stored_head": _head_json(self.stored_head),
            "consistency": self.consistency,
            "leaves": self.leaves,
            "root_matches": self.root_matches,
            "subjects": self.subjects,
            "chains": dict(sorted(self.chains.items())),
            "events": dict(sorted(self.events.items())),
            "directory": {
                "checked": self.directory_checked,
                "newer_heads": self.directory_newer_heads,
                "new_events": self.directory_new_events,
            },
            "findings": [f.to_json() for f in self.findings],
            "findings_total": self.findings_total,
            "error": self.error,
            "state": self.state_path,
            "state_saved": self.state_saved,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        out = [f"Postbox transparency log audit of {self.url}"]
        if self.log_key is not None:
            out.append(f"  log key       {self.log_key} (pinned by {self.pinned_by})")
        if self.head is not None:
            h = self.head
            out.append(f"  tree head     size {h['size']}, root {h['root']}, {_when(h['ts'])}")
        if self.stored_head is not None:
            stored = self.stored_head["size"]
            text = {
                "verified": f"proved: extends the stored head of size {stored}",
                "same head": f"the stored head (size {stored}), same root",
            }.get(self.consistency, f"{self.consistency} (stored head: size {stored})")
            out.append(f"  consistency   {text}")
        elif self.head is not None:
            out.append(f"  consistency   {self.consistency}")
        if self.leaves:
            match = {True: "matches the signed head", False: "DOES NOT MATCH", None: "-"}
            out.append(f"  leaves        {self.leaves}, recomputed root {match[self.root_matches]}")
        if self.subjects:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.chains.items()))
            out.append(f"  subjects      {self.subjects} ({kinds})")
            events = ", ".join(f"{k} {n}" for k, n in sorted(self.events.items()))
            out.append(f"  events        {events}")
            out.append(
                f"  directory     {self.directory_checked} answers checked "
                f"({self.directory_newer_heads} on a newer head, "
                f"{self.directory_new_events} events appended since)"
            )
        if self.findings_total:
            out.append(f"  findings      {self.findings_total}:")
            out.extend("    " + f.line() for f in self.findings[:SHOWN_FINDINGS])
            if self.findings_total > SHOWN_FINDINGS:
                out.append(f"    … and {self.findings_total - SHOWN_FINDINGS} more (use --json)")
        elif self.error is None:
            out.append("  findings      none")
        if self.error is not None:
            out.append(f"  error         {self.error}")
        if self.state_saved:
            out.append(f"  state         new head saved to {self.state_path}")
        out.append(f"  time          {self.seconds:.2f} s")
        verdict = {
            EXIT_OK: "AUDIT PASSED",
            EXIT_FAILED: "AUDIT FAILED",
        }.get(self.exit_code, "AUDIT NOT COMPLETED")
        out.append(verdict)
        return out


class _Abort(Exception):
    """A failure after which nothing more can be judged (already recorded as a finding)."""


def _is_network(exc: ClientError) -> bool:
    """Errors that say nothing about the log: the audit stops with exit 1."""
    return isinstance(exc, TransportError | ServerFailure | RateLimitedError)


def _event_org(event: LogEvent) -> str | None:
    """The organisation an event's body names (as the server's appender reads it)."""
    body, t = event["body"], event["type"]
    if t in _CERT_EVENTS:
        return cast(str | None, body["cert"]["org"])
    if t == "org_root":
        return cast(str, body["org_root"]["org"])
    if t == "server_key":
        return cast(str | None, body["org"])
    return None


# --- HTTP ----------------------------------------------------------------------------------------
# --- leaves on disk ---------------------------------------------------------------------------
class _Spill:
    """The audited leaves in a temporary SQLite file, indexed by subject after the walk."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(folder / "leaves.db", isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE leaves (
                idx INTEGER PRIMARY KEY, subject TEXT, seq INTEGER, type TEXT, leaf BLOB
            );
            CREATE TABLE kids (kid TEXT PRIMARY KEY, subject TEXT NOT NULL, idx INTEGER);
            """
        )

    def close(self) -> None:
        self._db.close()

    def add(self, rows: Sequence[tuple[int, str | None, int | None, str | None, bytes]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO leaves VALUES (?, ?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")

    def finish(self) -> None:
        self._db.execute("CREATE INDEX ix_subject ON leaves (subject, idx)")

    def leaf(self, idx: int) -> bytes | None:
        row = self._db.execute("SELECT leaf FROM leaves WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def org_subjects(self) -> list[str]:
        q = "SELECT subject FROM leaves WHERE seq = 0 AND type = 'org_root' ORDER BY idx"
        return [r[0] for r in self._db.execute(q)]

    def subjects(self) -> Iterator[str]:
        """Every subject, in the order of its first leaf (a cursor: nothing held)."""
        q = (
            "SELECT subject, MIN(idx) AS first FROM leaves WHERE subject IS NOT NULL "
            "GROUP BY subject ORDER BY first"
        )
        for row in self._db.execute(q):
            yield row[0]

    def chain(self, subject: str) -> list[tuple[int, bytes]]:
        q = "SELECT idx, leaf FROM leaves WHERE subject = ? ORDER BY idx"
        return [(int(r[0]), bytes(r[1])) for r in self._db.execute(q, (subject,))]

    def claim_kid(self, kid: str, subject: str, idx: int) -> tuple[str, int] | None:
        """Record that ``kid`` is certified for ``subject``; the earlier claim if another
        subject made one."""
        row = self._db.execute("SELECT subject, idx FROM kids WHERE kid = ?", (kid,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO kids VALUES (?, ?, ?)", (kid, subject, idx))
            return None
        return None if row[0] == subject else (str(row[0]), int(row[1]))


# --- the auditor ------------------------------------------------------------------------------
class LogAudit:
    """One audit of one server (use :func:`audit`)."""

    def __init__(
        self,
        url: str,
        *,
        state_path: Path | None = None,
        log_key: bytes | None = None,
        clock: Clock = wall_clock,
        concurrency: int = DEFAULT_CONCURRENCY,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.origin = origin_of(url)  # UsageError for anything but an http(s) URL
        self.url = url.rstrip("/")
        self.state_path = state_path
        self.given_key = log_key
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.report = AuditReport(url=self.url)
        self.report.state_path = None if state_path is None else str(state_path)
        self.state = self._load_state()
        self._http = Transport(url, http=http)
        self._log_pk = b""
        self._receipt_pk = b""
        self._head: TreeHead | None = None
        self._org_roots: dict[str, OrgRoot] = {}
        self._org_states: dict[str, SubjectState] = {}
        self._proofs: dict[tuple[int, str], asyncio.Task[None]] = {}

    # --- state file --------------------------------------------------------------------------
    def _load_state(self) -> ClientState:
        path = self.state_path
        if path is None or not path.exists():
            return ClientState(origin=self.origin, login=None)
        try:
            value = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: {exc}") from exc
        state = ClientState.from_json(value)
        if state.origin != self.origin:
            raise StateError(
                f"{path} is the state of {state.origin}, not of {self.origin}: "
                "use one state file per server"
            )
        return state

    def _save_state(self, head: TreeHead) -> None:
        assert self.state_path is not None
        self.state.log_pk = b64e(self._log_pk)
        self.state.receipt_pk = b64e(self._receipt_pk)
        self.state.server_checked = True
        self.state.sth = head
        data = json.dumps(self.state.to_json(), indent=1, sort_keys=True, ensure_ascii=False)
        write_private_file(self.state_path, (data + "\n").encode("utf-8"))

    # --- helpers -------------------------------------------------------------------------------
    def _find(self, finding: Finding) -> None:
        self.report.add(finding)

    def _fail(self, finding: Finding) -> NoReturn:
        """Record a failure after which nothing more can be judged, and stop."""
        self.report.add(finding)
        raise _Abort(finding.line())

    async def _get(self, path: str, params: Mapping[str, int] | None = None) -> Any:
        return (await self._http.request("GET", path, params=params)).body

    async def _promised(self, what: str, check: str, path: str, **params: int) -> Any:
        """A GET whose answer a verified tree head commits the server to: a refusal or an
        unusable answer is a failure, a network error stops the audit (exit 1)."""
        try:
            return await self._get(path, params or None)
        except ClientError as exc:
            if _is_network(exc):
                raise
            self._fail(Finding(check, "refused", f"the server did not answer {what}: {exc.detail}"))

    # --- the phases ------------------------------------------------------------------------------
    async def run(self) -> AuditReport:
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="postbox-audit-") as folder:
                spill = _Spill(Path(folder))
                try:
                    await self._audit(spill)
                finally:
                    spill.close()
        except _Abort:
            pass  # recorded as a finding
        except ClientError as exc:
            self.report.error = f"{type(exc).__name__}: {exc.detail}"
        finally:
            for task in self._proofs.values():
                task.cancel()
            await asyncio.gather(*self._proofs.values(), return_exceptions=True)
            await self._http.close()
        if self.report.ok and self.state_path is not None:
            assert self.report.head is not None
            try:
                self._save_state(self.report.head)
                self.report.state_saved = True
            except OSError as exc:
                self.report.error = f"the log verified, but the state file was not saved: {exc}"
        self.report.seconds = time.perf_counter() - started
        return self.report

    async def _audit(self, spill: _Spill) -> None:
        await self._pin()
        head = await self._tree_head()
        await self._walk(spill, head)
        self._check_leaf0(spill)
        self._replay_all(spill)
        await self._directory(spill)

    async def _pin(self) -> None:
        info = ServerInfo.from_json(await self._get("/api/v1/server"))
        r = self.report
        r.server_origin = info.origin
        stored = None if self.state.log_pk is None else b64d(self.state.log_pk, KEY_BYTES)
        if self.given_key is not None:
            pinned, r.pinned_by = self.given_key, "--log-key"
            if stored is not None and not equal(stored, pinned):
                r.log_key = b64e(pinned)
                self._fail(
                    Finding(
                        "pin",
                        "pin-conflict",
                        f"--log-key differs from the log key {b64e(stored)} in the state file",
                    )
                )
        elif stored is not None:
            pinned, r.pinned_by = stored, "state file"
        else:
            pinned, r.pinned_by = info.log_pk, "first use"
        r.log_key = b64e(pinned)
        self._log_pk = pinned
        if not equal(info.log_pk, pinned):
            self._fail(
                Finding(
                    "pin",
                    "log-key-changed",
                    f"the server announces log key {b64e(info.log_pk)}, not the pinned "
                    f"{b64e(pinned)}: another server or a replaced log",
                )
            )
        if self.state.receipt_pk is not None and not equal(
            b64d(self.state.receipt_pk, KEY_BYTES), info.receipt_pk
        ):
            self._fail(
                Finding(
                    "pin",
                    "receipt-key-changed",
                    f"the server announces receipt key {b64e(info.receipt_pk)}, not the "
                    f"stored {self.state.receipt_pk}",
                )
            )
        self._receipt_pk = info.receipt_pk

    async def _tree_head(self) -> TreeHead:
        served = await self._promised("GET …/sth", "tree-head", "/api/v1/transparency/sth")
        try:
            head = verify_tree_head(served, self._log_pk, now=self.clock())
        except CryptoError as exc:
            code = {
                KeyIdMismatch: "other-log-key",
                BadSignature: "bad-signature",
                StaleTreeHead: "stale",
            }.get(type(exc), "malformed")
            self._fail(
                Finding("tree-head", code, f"the signed tree head does not verify: {_name(exc)}")
            )
        r = self.report
        r.head = head
        last = self.state.sth
        r.stored_head = last
        if last is None:
            r.consistency = "first audit"
        else:
            proof = None
            if head["size"] > last["size"]:
                try:
                    answer = await self._get(
                        "/api/v1/transparency/consistency",
                        {"first": last["size"], "second": head["size"]},
                    )
                    proof = consistency_path(answer, last["size"], head["size"])
                except ClientError as exc:
                    if _is_network(exc):
                        raise
                    # an honest server signed the stored head, so it can always prove it
                    self._fork(head, last, f"it refuses the consistency proof ({exc.detail})")
                except CryptoError as exc:
                    self._fork(head, last, _name(exc))
            try:
                advance(last, head, proof)
            except CryptoError as exc:
                self._fork(head, last, _name(exc), rollback=isinstance(exc, StaleTreeHead))
            r.consistency = "verified" if proof is not None else "same head"
        self._head = head
        return head

    def _fork(
        self, head: TreeHead, last: TreeHead, why: str, *, rollback: bool = False
    ) -> NoReturn:
        self._fail(
            Finding(
                "tree-head",
                "rollback" if rollback else "fork",
                f"the server's tree head (size {head['size']}, {_when(head['ts'])}) is not an "
                f"extension of the head stored in the state file (size {last['size']}, "
                f"{_when(last['ts'])}): {why} — the log was "
                f"{'rolled back' if rollback else 'forked'}",
            )
        )

    # --- leaves ---------------------------------------------------------------------------------
    async def _page(self, start: int, end: int) -> list[bytes]:
        answer = await self._promised(
            f"leaves [{start}, {end})",
            "leaves",
            "/api/v1/transparency/leaves",
            start=start,
            end=end,
        )
        try:
            shapes.check(LEAVES_SHAPE, answer, "leaves")
            leaves = [b64d(x) for x in answer["leaves"]]
        except CryptoError as exc:
            self._fail(Finding("leaves", "malformed", f"leaves [{start}, {end}): {_name(exc)}"))
        if not leaves or len(leaves) > end - start:
            self._fail(
                Finding(
                    "leaves",
                    "withheld" if not leaves else "too-many",
                    f"asked for leaves [{start}, {end}) of a signed log of "
                    f"{self._size()} and got {len(leaves)}",
                )
            )
        return leaves

    def _size(self) -> int:
        assert self._head is not None
        return self._head["size"]

    async def _walk(self, spill: _Spill, head: TreeHead) -> None:
        size = head["size"]
        auditor = Auditor()
        pending: deque[tuple[int, int, asyncio.Task[list[bytes]]]] = deque()
        planned = 0
        try:
            while auditor.size < size:
                while len(pending) < PREFETCH_PAGES and planned < size:
                    end = min(planned + PAGE_SIZE, size)
                    pending.append((planned, end, asyncio.create_task(self._page(planned, end))))
                    planned = end
                start, end, task = pending.popleft()
                leaves = await task
                spill.add(self._audit_page(auditor, start, leaves))
                if start + len(leaves) < end:  # a short page: ask again from where it ended
                    for _, _, t in pending:
                        t.cancel()
                    pending.clear()
                    planned = start + len(leaves)
        finally:
            for _, _, t in pending:
                t.cancel()
            await asyncio.gather(*(t for _, _, t in pending), return_exceptions=True)
        spill.finish()
        r = self.report
        r.leaves = auditor.size
        try:
            auditor.check_head(head)
            r.root_matches = True
        except ForkDetected:
            r.root_matches = False
            self._find(
                Finding(
                    "root",
                    "root-mismatch",
                    f"the {size} leaves served hash to {b64e(auditor.root())}, not to the "
                    f"signed root {head['root']}: the leaves are not the signed log",
                )
            )

    def _audit_page(
        self, auditor: Auditor, start: int, leaves: list[bytes]
    ) -> list[tuple[int, str | None, int | None, str | None, bytes]]:
        rows: list[tuple[int, str | None, int | None, str | None, bytes]] = []
        for leaf in leaves:
            index = auditor.size
            found = auditor.add(leaf)
            for f in found:
                self._find(
                    Finding("chain", _CHAIN_CODES[f.kind], f.detail, index, f.subject, f.seq)
                )
            if any(f.kind == "malformed" for f in found):
                rows.append((index, None, None, None, leaf))
                continue
            event = json.loads(leaf)  # a valid event: the auditor parsed it strictly
            self.report.events[event["type"]] += 1
            rows.append((index, event["subject"], event["seq"], event["type"], leaf))
        return rows

    def _check_leaf0(self, spill: _Spill) -> None:
        leaf = spill.leaf(0)
        if leaf is None:
            return
        try:
            event = parse_leaf(leaf)
        except CryptoError:
            return  # already a malformed-leaf finding
        if event["type"] != "server_key":
            return  # already a first-leaf finding
        signed = cast(SignedServerKey, event["body"])
        key = signed["server_key"]
        problems = []
        if not equal(b64d(key["log_pk"], KEY_BYTES), self._log_pk):
            problems.append(f"log key {key['log_pk']} (pinned: {b64e(self._log_pk)})")
        if not equal(b64d(key["receipt_pk"], KEY_BYTES), self._receipt_pk):
            problems.append(f"receipt key {key['receipt_pk']} (server: {b64e(self._receipt_pk)})")
        if signed["org"] is not None:
            problems.append("an org endorsement (leaf 0 is unendorsed)")
        if problems:
            self._find(
                Finding(
                    "leaf0",
                    "server-key-mismatch",
                    "leaf 0 names " + "; ".join(problems),
                    0,
                    event["subject"],
                    event["seq"],
                )
            )

    # --- replay ----------------------------------------------------------------------------------
    def _replay_all(self, spill: _Spill) -> None:
        # Org chains first: their roots certify staff identities, their admin keys sign
        # team keys, memberships and revocations in other chains. An org's root is the
        # ``org_root`` event at seq 0 of its chain (what the server itself trusts).
        orgs = list(dict.fromkeys(spill.org_subjects()))
        for org in orgs:
            try:
                self._org_roots[org] = certs.verify_org_root(
                    parse_leaf(spill.chain(org)[0][1])["body"]
                )
            except CryptoError:
                continue  # the org chain's replay reports it
        for org in orgs:
            self.report.subjects += 1
            self._replay_subject(spill, org)
        done = set(orgs)
        for subject in spill.subjects():
            if subject not in done:
                self.report.subjects += 1
                self._replay_subject(spill, subject)

    def _replay_subject(self, spill: _Spill, subject: str) -> None:
        rows = spill.chain(subject)
        events = [parse_leaf(leaf) for _, leaf in rows]
        named = {o for o in (_event_org(e) for e in events) if o is not None}
        roots = {o: self._org_roots[o] for o in named if o in self._org_roots}
        orgs = {o: self._org_states[o] for o in named if o in self._org_states}
        try:
            state = replay(events, org_roots=roots, orgs=orgs)
        except CryptoError as exc:
            bad = _first_failing(events, roots, orgs)
            self._find(
                Finding(
                    "replay",
                    "chain-invalid",
                    f"the chain does not verify: {_name(exc)}",
                    rows[bad][0],
                    subject,
                    events[bad]["seq"],
                )
            )
            self.report.chains["invalid"] += 1
            return
        self.report.chains[state.kind] += 1
        if state.kind == "org":
            self._org_states[subject] = state
            self._check_endorsements(rows, events, subject)
        self._check_kids(spill, rows, events, subject)

    def _check_endorsements(
        self, rows: list[tuple[int, bytes]], events: list[LogEvent], org: str
    ) -> None:
        for (index, _), event in zip(rows, events, strict=True):
            if event["type"] != "server_key":
                continue
            key = cast(SignedServerKey, event["body"])["server_key"]
            if not (
                equal(b64d(key["log_pk"], KEY_BYTES), self._log_pk)
                and equal(b64d(key["receipt_pk"], KEY_BYTES), self._receipt_pk)
            ):
                self._find(
                    Finding(
                        "endorsement",
                        "endorses-other-keys",
                        "the org root endorses other server keys than this log's",
                        index,
                        org,
                        event["seq"],
                    )
                )

    def _check_kids(
        self, spill: _Spill, rows: list[tuple[int, bytes]], events: list[LogEvent], subject: str
    ) -> None:
        for (index, _), event in zip(rows, events, strict=True):
            if event["type"] not in _CERT_EVENTS:
                continue
            cert = cast(SignedCert, event["body"])["cert"]
            other = spill.claim_kid(cert["kid"], cert["subject"], index)
            if other is not None:
                self._find(
                    Finding(
                        "kid",
                        "kid-reused",
                        f"key {cert['kid']} is certified for {cert['subject']} here and for "
                        f"{other[0]} at leaf {other[1]}",
                        index,
                        subject,
                        event["seq"],
                    )
                )

    # --- the directory -------------------------------------------------------------------------
    async def _directory(self, spill: _Spill) -> None:
        subjects = spill.subjects()

        async def worker() -> None:
            for subject in subjects:  # shared iterator: each subject goes to one worker
                await self._check_subject(spill, subject)

        tasks = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _check_subject(self, spill: _Spill, subject: str) -> None:
        def note(code: str, detail: str, index: int | None = None, seq: int | None = None) -> None:
            self._find(Finding("directory", code, detail, index, subject, seq))

        try:
            answer = await self._get(f"/api/v1/keys/{segment(subject)}")
        except ClientError as exc:
            if _is_network(exc):
                raise
            note("refused", f"GET /api/v1/keys/{{subject}} refused a logged subject: {exc.detail}")
            return
        try:
            chain = verify_keys_response(answer, subject, self._log_pk, now=self.clock())
        except CryptoError as exc:
            note("unverifiable", f"the directory's answer does not verify: {_name(exc)}")
            return
        sth = chain.sth
        try:
            await self._consistent(sth)
        except CryptoError as exc:
            note(
                "fork",
                f"the directory proves this chain against a tree head (size {sth['size']}, "
                f"root {sth['root']}) that is not consistent with the audited one: {_name(exc)}",
            )
            return
        except _Refusal as exc:
            note("fork", str(exc))
            return
        self.report.directory_checked += 1
        audited_size = self._size()
        if sth["size"] > audited_size:
            self.report.directory_newer_heads += 1
        served = [
            (index, event_leaf(event))
            for index, event in zip(chain.indices, chain.events, strict=True)
        ]
        self.report.directory_new_events += sum(1 for i, _ in served if i >= audited_size)
        served = [(i, leaf) for i, leaf in served if i < audited_size]
        audited = [(i, leaf) for i, leaf in spill.chain(subject) if i < sth["size"]]
        if served == audited:
            return
        for k, (want, got) in enumerate(zip(audited, served, strict=False)):
            if want != got:
                if want[0] == got[0]:
                    note("swapped", f"the directory serves another event at seq {k}", got[0], k)
                else:
                    note(
                        "differs",
                        f"the directory serves seq {k} at leaf {got[0]}, the log has it at "
                        f"leaf {want[0]}",
                        got[0],
                        k,
                    )
                return
        if len(served) < len(audited):
            index = audited[len(served)][0]
            note(
                "withheld",
                f"the directory withholds {len(audited) - len(served)} of the subject's "
                f"{len(audited)} logged events (from seq {len(served)} on)",
                index,
                len(served),
            )
        else:
            index = served[len(audited)][0]
            note(
                "extra", "the directory serves an event the log does not have", index, len(audited)
            )

    async def _consistent(self, sth: TreeHead) -> None:
        """``sth`` (verified) is consistent with the audited head (proofs cached)."""
        key = (sth["size"], sth["root"])
        task = self._proofs.get(key)
        if task is None:
            task = asyncio.ensure_future(self._prove(sth))
            self._proofs[key] = task
        await asyncio.shield(task)

    async def _prove(self, sth: TreeHead) -> None:
        audited = self._head
        assert audited is not None
        n, m = sth["size"], audited["size"]
        if n == m:
            compare_heads(sth, audited)
            return
        first, second = min(n, m), max(n, m)
        try:
            answer = await self._get(
                "/api/v1/transparency/consistency", {"first": first, "second": second}
            )
        except ClientError as exc:
            if _is_network(exc):
                raise
            raise _Refusal(
                f"the server refuses a consistency proof between the directory's head "
                f"(size {n}) and the audited one (size {m}): {exc.detail}"
            ) from exc
        path = consistency_path(answer, first, second)
        older, newer = (sth, audited) if n < m else (audited, sth)
        try:
            merkle.verify_consistency(
                first,
                second,
                path,
                b64d(older["root"], HASH_BYTES),
                b64d(newer["root"], HASH_BYTES),
            )
        except BadProof as exc:
            raise ForkDetected("the two tree heads are not one log") from exc


class _Refusal(Exception):
    """The server refused a proof it must give."""


def _name(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _first_failing(
    events: list[LogEvent], roots: Mapping[str, OrgRoot], orgs: Mapping[str, SubjectState]
) -> int:
    """The position of the first event whose replay fails (the whole chain fails).

    A prefix fails if and only if it contains the failing event (replay goes in order),
    so a binary search over prefix lengths finds it with O(log n) replays.
    """
    lo, hi = 1, len(events)
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            replay(events[:mid], org_roots=roots, orgs=orgs)
        except CryptoError:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


# --- entry points -----------------------------------------------------------------------------
async def audit(
    url: str,
    *,
    state_path: Path | None = None,
    log_key: bytes | None = None,
    clock: Clock = wall_clock,
    concurrency: int = DEFAULT_CONCURRENCY,
    http: aiohttp.ClientSession | None = None,
) -> AuditReport:
    """Audit the log of the server at ``url`` (see the module docs).

    Raises :class:`UsageError` for a bad URL and :class:`StateError` for an unusable state
    file; everything else ends up in the report (``exit_code``).
    """
    if log_key is not None:
        try:
            check_sign_pk(log_key)
        except CryptoError as exc:
            raise UsageError(f"--log-key is not a log public key ({_name(exc)})") from exc
    auditor = LogAudit(
        url,
        state_path=state_path,
        log_key=log_key,
        clock=clock,
        concurrency=concurrency,
        http=http,
    )
    return await auditor.run()


def emit(report: AuditReport, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the report (text or one JSON object); the first failure loudly on ``err``."""
    if as_json:
        out.write(json.dumps(report.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
    else:
        for line in report.lines():
            out.write(line + "\n")
    code = report.exit_code
    if code == EXIT_FAILED:
        first = report.findings[0]
        more = report.findings_total - 1
        err.write(
            f"AUDIT FAILED: {first.line()}"
            + (f" (and {more} more finding{'s' if more > 1 else ''})" if more else "")
            + "\n"
        )
    elif code != EXIT_OK:
        err.write(f"error: the audit could not complete: {report.error}\n")
    return code


async def amain(
    url: str,
    *,
    state: Path | None = None,
    as_json: bool = False,
    log_key: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    clock: Clock = wall_clock,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``postbox keys audit``: run, print, return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        key = None
        if log_key is not None:
            try:
                key = b64d(log_key, KEY_BYTES)
            except CryptoError as exc:
                raise UsageError(f"--log-key is not a b64 public key ({_name(exc)})") from exc
        report = await audit(
            url, state_path=state, log_key=key, clock=clock, concurrency=concurrency
        )
    except (UsageError, StateError) as exc:
        if as_json:
            payload = {**exc.to_json(), "ok": False, "exit": EXIT_USAGE}
            out.write(json.dumps(payload, sort_keys=True) + "\n")
        err.write(f"error: {exc.detail}\n")
        return EXIT_USAGE
    return emit(report, as_json=as_json, out=out, err=err)


def _command(args: argparse.Namespace) -> int:
    return asyncio.run(
        amain(
            args.url,
            state=args.state,
            as_json=args.json,
            log_key=args.log_key,
            concurrency=args.concurrency,
        )
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys audit`` to the ``postbox`` parser."""
    keys = sub.add_parser("keys", help="the key directory and transparency log")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    text = (
        "replay a server's whole transparency log over HTTP and check it: tree heads, "
        "root, every chain's signatures, the directory's answers. Exit 0: verified; "
        "1: error (network); 2: usage; 3: VERIFICATION FAILED."
    )
    p = keys_sub.add_parser("audit", help="audit a server's transparency log", description=text)
    p.add_argument("url", help="the server, e.g. https://postbox.example")
    p.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="state file: the pinned log key and the last verified tree head (updated on "
        "success); without it, nothing is remembered",
    )
    p.add_argument("--json", action="store_true", help="print one JSON report")
    p.add_argument(
        "--log-key",
        metavar="B64",
        help="the log public key to pin (default: from the state file, else trust on first use)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"directory requests in flight (default {DEFAULT_CONCURRENCY})",
    )
    p.set_defaults(func=_command)
