"""The group commit itself (``postbox.mailbox.db.batch``): batching, per-item outcomes,
failures, shutdown, and the optimistic-then-one-by-one transaction strategy on both
databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from postbox.mailbox.db.batch import GroupCommit, OpenRunner, Runner, write_batch
from postbox.mailbox.db.engine import Database
from postbox.mailbox.db.migrate import upgrade
from postbox.mailbox.db.schema import rate_limits
from postbox.mailbox.errors import BadRequest, PostboxError, ServiceUnavailable


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks (and the writer's thread) run until ``condition`` holds (a bounded
    poll of a condition; nothing depends on how long anything takes)."""
    for _ in range(20_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def runner(run: Runner[int, int]) -> OpenRunner[int, int]:
    """The writer's resources: here only the run function itself."""

    @asynccontextmanager
    async def open_runner() -> AsyncIterator[Runner[int, int]]:
        yield run

    return open_runner


async def stop(writer: asyncio.Task[None]) -> None:
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer


def retry() -> ServiceUnavailable:
    return ServiceUnavailable("again", code="send-retry")


async def test_batches_form_while_a_batch_is_written_and_outcomes_are_per_item() -> None:
    release = asyncio.Event()
    seen: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(items))
        if len(seen) == 1:
            await release.wait()
        return [BadRequest("odd", code="odd") if i % 2 else i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit("t", max_batch=4, retryable=retry)
    writer = asyncio.create_task(commit.run_here(runner(run)))
    await commit.ready.wait()
    try:
        first = asyncio.create_task(commit.submit(0))
        await until(lambda: bool(seen))
        rest = [asyncio.create_task(commit.submit(i)) for i in range(1, 10)]
        await until(lambda: commit.queued == 9)
        release.set()
        assert await first == 0
        results = await asyncio.gather(*rest, return_exceptions=True)
    finally:
        await stop(writer)
    assert [len(b) for b in seen] == [1, 4, 4, 1]  # at most max_batch, in arrival order
    for i, result in zip(range(1, 10), results, strict=True):
        if i % 2:
            assert isinstance(result, BadRequest)
        else:
            assert result == i * 10


async def test_a_failing_batch_answers_retry_to_each_item_and_the_writer_goes_on() -> None:
    calls = 0

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit("t", max_batch=8, retryable=retry)
    writer = asyncio.create_task(commit.run_in_thread(runner(run)))
    await commit.ready.wait()
    try:
        with pytest.raises(ServiceUnavailable):
            await commit.submit(1)
        assert await commit.submit(2) == 2
    finally:
        await stop(writer)


@pytest.mark.parametrize("threaded", [False, True])
async def test_shutdown_fails_what_is_queued_and_later_submits(threaded: bool) -> None:
    async def run(items: Sequence[int]) -> list[int | BaseException]:
        await asyncio.Event().wait()  # never finishes
        raise AssertionError  # pragma: no cover

    commit: GroupCommit[int, int] = GroupCommit("t", max_batch=1, retryable=retry)
    serve = commit.run_in_thread if threaded else commit.run_here
    writer = asyncio.create_task(serve(runner(run)))
    await commit.ready.wait()
    a = asyncio.create_task(commit.submit(1))
    await until(lambda: commit.queued == 0 and bool(commit.batch_sizes))
    b = asyncio.create_task(commit.submit(2))
    await until(lambda: commit.queued == 1)
    await stop(writer)
    for task in (a, b):
        with pytest.raises(ServiceUnavailable):
            await task
    with pytest.raises(ServiceUnavailable):
        await commit.submit(3)


# --- write_batch on a real database ------------------------------------------------------------
async def _apply(conn: AsyncConnection, items: Sequence[str]) -> list[str | BaseException]:
    """Insert one rate_limits row per item; an existing key is refused (read first)."""
    existing = {
        r[0]
        for r in await conn.execute(select(rate_limits.c.key).where(rate_limits.c.key.in_(items)))
    }
    outcomes: list[str | BaseException] = []
    rows = []
    for item in items:
        if item in existing:
            outcomes.append(BadRequest("taken", code="taken"))
        elif item.startswith("bad"):
            outcomes.append(BadRequest("bad", code="bad"))
        else:
            rows.append({"key": item, "window": 0, "count": 1})
            outcomes.append(item)
    if rows:  # duplicates *within* the batch surface as a constraint violation here
        await conn.execute(rate_limits.insert(), rows)
    if "refuse-late" in items:
        raise BadRequest("refused after writing", code="late")
    return outcomes


async def _keys(db: Database) -> list[str]:
    async with db.read() as conn:
        return sorted(r[0] for r in await conn.execute(select(rate_limits.c.key)))


async def test_write_batch_optimistic_then_one_by_one(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        out = await write_batch(db, ["a", "bad-1", "b"], _apply, refusal=PostboxError)
        assert out[0] == "a" and out[2] == "b" and isinstance(out[1], BadRequest)
        # "c" twice: the multi-row insert fails, so every item is applied one by one
        out = await write_batch(db, ["c", "d", "c", "a"], _apply, refusal=PostboxError)
        assert out[:2] == ["c", "d"]
        assert [getattr(o, "code", None) for o in out[2:]] == ["taken", "taken"]
        # a refusal raised after the writes rolls back only that item
        out = await write_batch(db, ["e", "refuse-late", "f"], _apply, refusal=PostboxError)
        assert out[0] == "e" and out[2] == "f"
        assert getattr(out[1], "code", None) == "late"
        assert await _keys(db) == ["a", "b", "c", "d", "e", "f"]
    finally:
        await db.dispose()
