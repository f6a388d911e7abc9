"""Group commit: many requests' writes in one transaction, each request answered alone.

One SQLAlchemy async transaction costs 1 to 2 ms whatever it holds (greenlet and thread hops,
RECIPES.md Gotcha 14), so one transaction per request caps a write route near 500/s. A
:class:`GroupCommit` lets concurrent requests share one:

* a request handler does its CPU work (parsing, canonical checks, signatures) first, then
  :meth:`GroupCommit.submit`\\ s one item and awaits its own outcome;
* one writer per process (on a thread and event loop of its own, see
  :meth:`GroupCommit.run_in_thread`) takes the first queued item, drains whatever else is
  queued (up to ``max_batch``), and hands the batch to the feature's runner, which returns
  one outcome per item: a result, or the exception that refuses that item alone;
* the runner answers only after its transaction committed, so a request sees success only
  for a durable write. While a batch is written, the next one queues up: batches grow with
  the load and shrink to one item when the server is idle (no added latency at low load).
  On PostgreSQL a writer keeps up to ``concurrency`` batches in flight, each in its own
  transaction (a batch mostly waits for round trips and its commit); SQLite has one.

:func:`write_batch` is the transaction strategy a runner uses (the messages feature, and any
later write-heavy route):

1. **Optimistic**: one write transaction for the whole batch. The feature reads what all
   items need with a few set-based queries, validates each item in Python (tracking in-batch
   state, so that items behave exactly as if applied one after the other), and writes the
   accepted ones with multi-row inserts. Items refused in Python fail alone, in the same
   transaction, at no extra cost.
2. **One by one** when anything in step 1 raised — a constraint violation (another process
   committed the same unique key between our read and our insert), a refusal raised by a
   hook half-way through the writes, or a failed commit: everything of step 1 is rolled back
   and every item is applied again in its own savepoint, inside one new transaction, so the
   items that are fine still commit together and the one at fault fails alone with its own
   answer. A failed commit of step 1 may in fact have committed (the connection dropped
   after COMMIT was sent): the per-item re-run then finds the rows and answers as for a
   resend, which is why features using this need idempotent items.
3. When step 2 cannot commit either (the database is gone), every item of the batch gets
   ``retryable()`` — for messages a 503 with ``Retry-After`` that is safe to retry because
   sends are idempotent.

A crash of the process loses only uncommitted work: no request was answered for it, and
the client's resend is idempotent. Durability is that of the database's commit (SQLite
``synchronous=FULL`` by default, PostgreSQL's ``synchronous_commit``).

Several processes each run their own writer; the database's unique constraints and
conditional updates stay the final arbiters, exactly as with one transaction per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.engine import Database

log = logging.getLogger("postbox.batch")

I = TypeVar("I")  # noqa: E741 - the conventional name of an item type
R = TypeVar("R")

Runner = Callable[[Sequence[I]], Awaitable[Sequence[R | BaseException]]]
#: opens what the writer needs (its own database engine, on the writer's loop) and yields
#: the function that writes one batch
OpenRunner = Callable[[], AbstractAsyncContextManager[Runner[I, R]]]


@dataclass
class _Pending(Generic[I, R]):
    item: I
    future: asyncio.Future[R] = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # the request went away; its outcome stands anyway
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(answers: Sequence[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in answers:
        _settle(future, outcome)


class GroupCommit(Generic[I, R]):
    """A queue of items and the one writer of this process that drains it.

    The writer runs on an event loop of its own, in a thread of its own
    (:meth:`run_in_thread`, what the server does), or on the caller's loop
    (:meth:`run_here`). Why a thread: the writer awaits a dozen statements per batch one
    after the other, and on a loop that also serves hundreds of requests every await waits
    behind all of their callbacks (a few milliseconds each under load), which made a batch
    take ten times longer than its SQL. On its own loop each await costs only the
    statement. The batch code stays ordinary async SQLAlchemy code; the writer uses its own
    engine, because connections belong to the loop that opened them.

    The runner must return exactly one outcome per item, in order: the item's result, or a
    :class:`BaseException` instance that :meth:`submit` raises for that item alone. If it
    raises, every item of that batch gets ``retryable()``.
    """

    def __init__(
        self,
        name: str,
        *,
        max_batch: int,
        retryable: Callable[[], BaseException],
        concurrency: int = 1,
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be positive")
        self.name = name
        self.max_batch = max_batch
        #: batches written at the same time (each in its own transaction); see _serve
        self.concurrency = concurrency
        self._retryable = retryable
        self._inbox: queue.SimpleQueue[_Pending[I, R]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None  # the writer's loop
        self._wakeup: asyncio.Event | None = None
        self._wake_pending = False
        self._closed = False
        #: set once a writer runs (the server's start-up waits for it)
        self.ready = asyncio.Event()
        #: sizes of the last batches (tests and benchmarks look at batching)
        self.batch_sizes: list[int] = []
        #: the OS thread id of the writer's thread (benchmarks read its CPU time)
        self.native_id: int | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not counting the batch being written)."""
        return self._inbox.qsize()

    async def submit(self, item: I) -> R:
        """Queue ``item`` and wait until its batch committed (or it was refused)."""
        loop, wakeup = self._loop, self._wakeup
        if self._closed or loop is None or wakeup is None:
            raise self._retryable()
        here = asyncio.get_running_loop()
        future: asyncio.Future[R] = here.create_future()
        self._inbox.put(_Pending(item, future, here))
        # One wake-up in flight is enough (each costs a write to the writer loop's self-pipe):
        # the writer clears the flag on its own loop before it looks at the queue again, so
        # an item put before that is seen, and one put after it schedules a new wake-up.
        if not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._woken, wakeup)
            except RuntimeError:  # the writer's loop has just closed; the drain answers it
                self._wake_pending = False
        return await future

    def _woken(self, wakeup: asyncio.Event) -> None:
        self._wake_pending = False
        wakeup.set()

    # --- running the writer --------------------------------------------------------------
    async def run_here(self, open_runner: OpenRunner[I, R]) -> None:
        """Run the writer on the current loop until cancelled."""
        self._closed = False
        try:
            await self._serve(open_runner, lambda error: None if error else self.ready.set())
        finally:
            self._closed = True
            self._drain()

    async def run_in_thread(self, open_runner: OpenRunner[I, R]) -> None:
        """Run the writer on a thread with its own loop until cancelled (a background job).

        Returns (or raises) only after the thread ended and everything it left was answered.
        """
        self._closed = False
        main = asyncio.get_running_loop()
        started: asyncio.Future[None] = main.create_future()
        ready = threading.Event()
        control: dict[str, Any] = {}

        def report(error: BaseException | None) -> None:
            def settle() -> None:
                if not started.done():
                    if error is None:
                        started.set_result(None)
                    else:
                        started.set_exception(error)

            main.call_soon_threadsafe(settle)

        async def thread_main() -> None:
            control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            serve = asyncio.create_task(self._serve(open_runner, report))
            stop = asyncio.create_task(control["stop"].wait())
            await asyncio.wait({serve, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (serve, stop):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serve
            if serve.done() and not serve.cancelled() and serve.exception() is not None:
                report(serve.exception())

        def target() -> None:
            self.native_id = threading.get_native_id()
            try:
                asyncio.run(thread_main())
            except BaseException as exc:  # pragma: no cover - thread_main handles its errors
                report(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=target, name=f"postbox-{self.name}", daemon=True)
        thread.start()
        try:
            await started
            self.ready.set()
            await asyncio.to_thread(thread.join)
            # not cancelled: the writer died; raising makes the supervisor restart it
            raise RuntimeError(f"the {self.name} writer stopped")
        finally:
            self._closed = True
            await asyncio.to_thread(ready.wait)
            loop = control.get("loop")
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # already closed
                    loop.call_soon_threadsafe(control["stop"].set)
            await asyncio.to_thread(thread.join)
            self._drain()

    async def _serve(
        self, open_runner: OpenRunner[I, R], report: Callable[[BaseException | None], None]
    ) -> None:
        try:
            runner_cm = open_runner()
            run = await runner_cm.__aenter__()
        except BaseException as exc:
            report(exc)
            raise
        # With ``concurrency`` > 1 (PostgreSQL) up to that many batches are in flight, each
        # in its own transaction: a batch waits mostly for round trips and its commit, not
        # for CPU. Batches that meet on a unique key are arbitrated by the database (the
        # loser is applied again one by one). SQLite has one writer: concurrency 1.
        slots = asyncio.Semaphore(self.concurrency)
        flying: set[asyncio.Task[None]] = set()

        async def write(batch: list[_Pending[I, R]]) -> None:
            try:
                await self._write(run, batch)
            finally:
                slots.release()

        try:
            self._wakeup = asyncio.Event()
            self._wake_pending = False
            self._loop = asyncio.get_running_loop()
            report(None)
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while True:
                    await slots.acquire()
                    batch = self._take()
                    if not batch:
                        slots.release()
                        break
                    task = asyncio.create_task(write(batch))
                    flying.add(task)
                    task.add_done_callback(flying.discard)
        finally:
            self._closed = True
            for task in list(flying):
                task.cancel()
            for task in list(flying):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner_cm.__aexit__(None, None, None)

    def _take(self) -> list[_Pending[I, R]]:
        batch: list[_Pending[I, R]] = []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self) -> None:
        """Answer everything nobody will write (shutdown). A batch that was being written
        may or may not have committed; a resend finds out (items are idempotent)."""
        while batch := self._take():
            self._deliver_all([(pending, self._retryable()) for pending in batch])

    @staticmethod
    def _deliver_all(answers: Sequence[tuple[_Pending[I, R], R | BaseException]]) -> None:
        """Settle the futures on their own loops: one call per loop, not one per item."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], Any]]] = {}
        for pending, outcome in answers:
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settle in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the request's loop is gone
                loop.call_soon_threadsafe(_settle_all, settle)

    async def _write(self, run: Runner[I, R], batch: list[_Pending[I, R]]) -> None:
        self.batch_sizes.append(len(batch))
        del self.batch_sizes[:-64]
        try:
            outcomes = await run([p.item for p in batch])
            if len(outcomes) != len(batch):  # pragma: no cover - a bug in the runner
                raise RuntimeError(f"{self.name}: {len(outcomes)} outcomes for {len(batch)}")
        except asyncio.CancelledError:
            self._deliver_all([(pending, self._retryable()) for pending in batch])
            raise
        except Exception:
            log.exception("%s: a batch of %d failed; answering retry", self.name, len(batch))
            outcomes = [self._retryable() for _ in batch]
        self._deliver_all(list(zip(batch, outcomes, strict=True)))


Apply = Callable[[AsyncConnection, Sequence[I]], Awaitable[list[R | BaseException]]]


Finish = Callable[[AsyncConnection, Sequence[R | BaseException]], Awaitable[None]]


async def write_batch(
    db: Database,
    items: Sequence[I],
    apply: Apply[I, R],
    *,
    refusal: type[BaseException],
    finish: Finish[R] | None = None,
) -> list[R | BaseException]:
    """Apply ``items`` optimistically in one transaction, else one by one (see the module).

    ``apply(conn, items)`` runs inside the transaction and returns one outcome per item; it
    may raise anything to abort the optimistic attempt. In the one-by-one pass an exception
    of type ``refusal`` (the feature's error base) raised for an item becomes that item's
    outcome; any other exception there is a database failure and propagates, so that the
    caller answers every item with a retry. ``finish(conn, outcomes)`` runs once per
    transaction, after every item, as its last write (e.g. appending live events, whose
    PostgreSQL lock is held until the commit and must come last).
    """
    try:
        async with db.write() as conn:
            outcomes = await apply(conn, items)
            if finish is not None:
                await finish(conn, outcomes)
            return outcomes
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if len(items) == 1 and isinstance(exc, refusal):
            return [exc]
        log.info("optimistic batch of %d aborted (%s); one by one", len(items), type(exc).__name__)
    one_by_one: list[R | BaseException] = []
    async with db.write() as conn:
        for item in items:
            try:
                async with conn.begin_nested():
                    one_by_one.extend(await apply(conn, [item]))
            except refusal as exc:
                one_by_one.append(exc)
        if finish is not None:
            await finish(conn, one_by_one)
    return one_by_one
