"""The window batcher against a real database: one statement for many callers, each caller's
own answer or error, cancellation that spares the others, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import vwap_pb2

from tests.vwap.support import VwapStarter, insert_trades
from tradekit.domain import Trade
from tradekit.money import canonical_text
from tradekit.wire import duration_from_ms, timestamp_from_ms
from vwap.batching import BatcherClosed, BatchLimits, WindowBatcher
from vwap.errors import DeadlinePassed
from vwap.ranges import DAY_MS, HOUR_MS, MINUTE_MS, plan_pieces
from vwap.storage import Pool, VwapStore, WindowRead, open_pool

BASE = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a UTC midnight in Nov 2023
#: An end the database cannot represent (after the year 294276): a DataError in SQL.
OUT_OF_RANGE_MS = 10**16
#: Batches leave only when full, never on the clock (tests never depend on timing).
NEVER = 3600.0


def _trades(seed: int) -> list[Trade]:
    rng = random.Random(seed)
    trades = [
        Trade(
            rng.choice(("BTC", "ETH")),
            n,
            BASE + rng.randrange(DAY_MS),
            Decimal(rng.randrange(1, 10**6)).scaleb(-rng.randint(0, 5)),
            Decimal(rng.randrange(1, 10**4)).scaleb(-rng.randint(0, 7)),
        )
        for n in range(1, 1501)
    ]
    return trades + [
        Trade("BTC", 10**6 + k, BASE + HOUR_MS, Decimal("2.50"), Decimal(1)) for k in range(4)
    ]


TRADES = _trades(3)


def _brute(symbol: str, start: int, end: int) -> tuple[Decimal, Decimal, int]:
    inside = [t for t in TRADES if t.symbol == symbol and start <= t.ts_ms < end]
    return (
        sum((t.price * t.quantity for t in inside), Decimal(0)),
        sum((t.quantity for t in inside), Decimal(0)),
        len(inside),
    )


def _exact(read: WindowRead, symbol: str, start: int, end: int) -> None:
    notional, volume, count = _brute(symbol, start, end)
    assert (read.sums.notional, read.sums.volume, read.sums.count) == (notional, volume, count)
    assert str(read.sums.notional) == str(notional)  # the same scale too
    assert str(read.sums.volume) == str(volume)


def _windows(n: int, seed: int) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    out = [("BTC", BASE + HOUR_MS, BASE + HOUR_MS + 1)]
    while len(out) < n:
        start = BASE + rng.randrange(-HOUR_MS, DAY_MS)
        length = rng.randint(1, rng.choice((1000, MINUTE_MS, HOUR_MS, 3 * HOUR_MS)))
        out.append((rng.choice(("BTC", "ETH")), start, start + length))
    return out


@pytest.fixture
async def pool(store_url: str) -> AsyncIterator[Pool]:
    """The VWAP pool over a store holding TRADES."""
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, TRADES)
        await conn.commit()
    async with open_pool(store_url, min_size=1, max_size=4) as opened:
        yield opened


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded) until ``check`` holds; the bound only turns a hang into a failure."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@contextlib.asynccontextmanager
async def _trades_locked(
    store_url: str,
) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], Callable[[int], Awaitable[bool]]]]:
    """A connection holding an exclusive lock on ``trades`` (statements wait on it until its
    ``rollback()``) and a probe: are exactly ``n`` client sessions waiting on a lock?

    The probe has its own autocommit connection: PostgreSQL keeps one view of
    ``pg_stat_activity`` per transaction, so probing inside the locker's transaction would see
    the sessions as they were at the first probe, forever."""
    async with (
        await psycopg.AsyncConnection.connect(store_url) as locker,
        await psycopg.AsyncConnection.connect(store_url, autocommit=True) as probe,
    ):

        async def count_is(expected: int) -> bool:
            cur = await probe.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                # Not an autovacuum worker that queued behind the lock after the inserts.
                " AND backend_type = 'client backend'"
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]) == expected

        await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        yield locker, count_is


def _read(batcher: WindowBatcher, window: tuple[str, int, int], **kw: Any) -> Any:
    symbol, start, end = window
    return batcher.read(symbol, plan_pieces(start, end), **kw)


async def test_concurrent_windows_are_answered_exactly_by_one_statement(pool: Pool) -> None:
    """40 concurrent reads: one statement, and each caller gets its own brute-force sums."""
    windows = _windows(40, seed=1)
    limits = BatchLimits(lanes=1, max_windows=100, max_wait_s=NEVER, flush_at=40)
    async with WindowBatcher(VwapStore(pool), limits) as batcher:
        reads = await asyncio.gather(*(_read(batcher, w) for w in windows))
    assert (batcher.statements, batcher.windows) == (1, 40)
    for window, read in zip(windows, reads, strict=True):
        _exact(read, *window)
        assert read.known
    assert max(read.sums.count for read in reads) > 50


async def test_a_statement_holds_at_most_max_windows(pool: Pool) -> None:
    """25 queued reads with at most 10 per statement make three statements, all exact."""
    windows = _windows(25, seed=2)
    limits = BatchLimits(lanes=1, max_windows=10, max_wait_s=NEVER, flush_at=5)
    async with WindowBatcher(VwapStore(pool), limits) as batcher:
        reads = await asyncio.gather(*(_read(batcher, w) for w in windows))
    assert (batcher.statements, batcher.windows) == (3, 25)
    for window, read in zip(windows, reads, strict=True):
        _exact(read, *window)


async def test_a_bad_window_fails_alone(pool: Pool) -> None:
    """A window the database rejects (DataError) fails alone; the others of its batch succeed."""
    windows = _windows(9, seed=3)
    bad = ("BTC", OUT_OF_RANGE_MS - HOUR_MS, OUT_OF_RANGE_MS)
    limits = BatchLimits(lanes=1, max_windows=100, max_wait_s=NEVER, flush_at=10)
    async with WindowBatcher(VwapStore(pool), limits) as batcher:
        outcomes = await asyncio.gather(
            *(_read(batcher, w) for w in [*windows[:4], bad, *windows[4:]]),
            return_exceptions=True,
        )
    assert isinstance(outcomes[4], psycopg.DataError)
    good = outcomes[:4] + outcomes[5:]
    for window, read in zip(windows, good, strict=True):
        assert isinstance(read, WindowRead)
        _exact(read, *window)
    assert batcher.retried_batches == 1
    assert batcher.statements == 1 + 10  # the batch, then each window alone


async def test_a_cancelled_caller_does_not_cancel_the_statement_of_the_others(
    pool: Pool, store_url: str
) -> None:
    """One caller leaves while the statement waits on a lock; the others still get answers."""
    windows = _windows(3, seed=4)
    limits = BatchLimits(lanes=1, max_windows=100, max_wait_s=NEVER, flush_at=3)
    async with (
        WindowBatcher(VwapStore(pool), limits) as batcher,
        _trades_locked(store_url) as (locker, waiters),
    ):
        callers = [asyncio.create_task(_read(batcher, w)) for w in windows]
        await _eventually(lambda: waiters(1), "the statement waits on the lock")
        callers[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await callers[0]
        assert await waiters(1)  # still running for the two others
        await locker.rollback()
        reads = await asyncio.gather(*callers[1:])
    for window, read in zip(windows[1:], reads, strict=True):
        _exact(read, *window)
    assert batcher.statements == 1


async def test_the_statement_is_cancelled_when_every_caller_left(
    pool: Pool, store_url: str
) -> None:
    """When all callers of a statement are gone it is cancelled on the server; reads go on."""
    windows = _windows(3, seed=5)
    limits = BatchLimits(lanes=1, max_windows=100, max_wait_s=NEVER, flush_at=2)
    async with (
        WindowBatcher(VwapStore(pool), limits) as batcher,
        _trades_locked(store_url) as (locker, waiters),
    ):
        callers = [asyncio.create_task(_read(batcher, w)) for w in windows[:2]]
        await _eventually(lambda: waiters(1), "the statement waits on the lock")
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await _eventually(lambda: waiters(0), "the statement is cancelled on the server")
        await locker.rollback()
        again = await asyncio.gather(_read(batcher, windows[2]), _read(batcher, windows[0]))
    _exact(again[0], *windows[2])
    _exact(again[1], *windows[0])


async def test_a_passed_deadline_fails_its_caller_only(pool: Pool, store_url: str) -> None:
    """DeadlinePassed for the caller whose deadline passed; its batch-mate is still answered."""
    windows = _windows(2, seed=6)
    limits = BatchLimits(lanes=1, max_windows=100, max_wait_s=NEVER, flush_at=2)
    async with (
        WindowBatcher(VwapStore(pool), limits) as batcher,
        _trades_locked(store_url) as (locker, waiters),
    ):
        hurried = asyncio.create_task(_read(batcher, windows[0], timeout_ms=300))
        patient = asyncio.create_task(_read(batcher, windows[1], timeout_ms=60_000))
        with pytest.raises(DeadlinePassed):
            await hurried
        assert await waiters(1)
        await locker.rollback()
        _exact(await patient, *windows[1])


async def test_close_fails_waiting_callers_and_leaves_no_task(pool: Pool, store_url: str) -> None:
    """close() cancels the running statement (on the server too), fails its callers with
    BatcherClosed, returns the lanes' connections and leaves no task behind; twice is fine."""
    windows = _windows(3, seed=7)
    before = asyncio.all_tasks()
    batcher = WindowBatcher(VwapStore(pool), BatchLimits(lanes=2, max_wait_s=NEVER, flush_at=2))
    batcher.start()
    async with _trades_locked(store_url) as (locker, waiters):
        callers = [asyncio.create_task(_read(batcher, w)) for w in windows]
        await _eventually(lambda: waiters(1), "the statement waits on the lock")
        await batcher.close()
        await batcher.close()
        outcomes = await asyncio.gather(*callers, return_exceptions=True)
        assert all(isinstance(o, BatcherClosed) for o in outcomes), outcomes
        await _eventually(lambda: waiters(0), "the statement is cancelled on the server")
        await locker.rollback()
    left = asyncio.all_tasks() - before
    assert not [t for t in left if t.get_name().startswith("vwap-batch")], left

    async def lanes_returned() -> bool:
        stats = pool.get_stats()
        return bool(stats["pool_size"] == stats["pool_available"])

    await _eventually(lanes_returned, "the lanes' connections are back in the pool")
    with pytest.raises(BatcherClosed):
        await _read(batcher, windows[0])


async def test_get_vwap_rejects_a_bad_window_alone(start_vwap: VwapStarter, store_url: str) -> None:
    """Through gRPC: a time outside years 1-9999 is INVALID_ARGUMENT before it reaches a batch
    (the batcher's own test covers such a window inside a statement); the concurrent ones are
    exact."""
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, TRADES)
        await conn.commit()
    windows = _windows(12, seed=8)
    # The batch leaves when the 12 good requests are queued: the bad one never joins it.
    async with start_vwap(batch_wait_ms=3_600_000, batch_flush_at=12) as (running, stub):

        async def get(end: Timestamp, window_ms: int, symbol: str) -> Any:
            request = vwap_pb2.GetVwapRequest(
                symbol=symbol, end_time=end, window=duration_from_ms(window_ms)
            )
            return await stub.GetVwap(request, timeout=30)

        bad = get(Timestamp(seconds=OUT_OF_RANGE_MS // 1000), HOUR_MS, "BTC")
        outcomes = await asyncio.gather(
            bad,
            *(get(timestamp_from_ms(e), e - s, sym) for sym, s, e in windows),
            return_exceptions=True,
        )
    error = outcomes[0]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "9999-12-31" in (error.details() or "")
    for (symbol, start, end), response in zip(windows, outcomes[1:], strict=True):
        notional, volume, count = _brute(symbol, start, end)
        assert not isinstance(response, BaseException), response
        point = response.point
        assert (point.notional, point.volume, point.trade_count) == (
            canonical_text(notional),
            canonical_text(volume),
            count,
        )
    assert running.batcher.retried_batches == 0  # one statement answered all 12
    assert running.batcher.statements == 1
