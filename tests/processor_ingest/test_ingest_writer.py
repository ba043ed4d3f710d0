"""Batched writes: duplicates, events, quarantine and backpressure (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.db import Pool
from processor.ingest import writer as writer_module
from processor.ingest.records import Gap, Quarantined, Received, Record
from processor.ingest.storage import (
    COMMIT_MARGIN_MS,
    FINEST_BUCKET_MS,
    BatchCounts,
    BatchKey,
    BatchResult,
    committed_counts,
    datetime_from_ms,
    materialised_cutoff,
    ms_from_datetime,
    write_batch,
)
from processor.ingest.writer import BatchWriter
from processor.stats import ProcessorCounters
from tests.processor_ingest.stored import count, stored_trades, trade_events
from tradekit.domain import Trade

T0 = 1_700_000_000_000


def trade(
    trade_id: int, *, symbol: str = "BTC", ts: int | None = None, price: str = "27123.45"
) -> Trade:
    """A BTC trade with exact values."""
    return Trade(
        symbol, trade_id, T0 + trade_id if ts is None else ts, Decimal(price), Decimal("0.125")
    )


def writer(pool: Pool, counters: ProcessorCounters, **kwargs: int) -> BatchWriter:
    """A writer with small batches and a short flush interval."""
    settings = {"batch_size": 50, "flush_interval_ms": 20, "queue_size": 100} | kwargs
    return BatchWriter(pool, counters, **settings)


async def run_until_flushed(w: BatchWriter, records: Sequence[Record]) -> None:
    """Run ``w`` until ``records`` are committed, then stop it."""
    async with asyncio.TaskGroup() as group:
        task = group.create_task(w.run())
        for record in records:
            await w.put(record)
        await w.flush()
        task.cancel()


def test_millisecond_conversion_is_exact() -> None:
    """ms -> datetime -> ms is the identity, including negative and large values."""
    for ms in (0, 1, -1, T0, T0 + 999, 253_402_300_799_999):
        assert ms_from_datetime(datetime_from_ms(ms)) == ms
    assert datetime_from_ms(T0 + 7).microsecond == 7_000


async def test_batch_stores_trades_exactly_with_one_event_each(pool: Pool) -> None:
    """Inserted trades keep exact values, source ws, unverified, and get one TradeEvent each."""
    counters = ProcessorCounters()
    trades = [trade(1), trade(2, price="0.000000000000000000000000000001"), trade(3, symbol="ETH")]
    await run_until_flushed(writer(pool, counters), [Received(t, T0 + 50) for t in trades])
    stored = await stored_trades(pool)
    assert sorted(s[0].sort_key for s in stored) == sorted(t.sort_key for t in trades)
    for t, source, verified, received in stored:
        assert any(t.same_values(x) for x in trades)
        assert (source, verified, received) == ("ws", False, T0 + 50)
    price = next(s[0].price for s in stored if s[0].trade_id == 2)
    assert price.as_tuple() == Decimal("0.000000000000000000000000000001").as_tuple()
    events = await trade_events(pool)
    assert [(e[0].symbol, e[0].trade_id) for e in events] == [("BTC", 1), ("BTC", 2), ("ETH", 3)]
    assert all(e[0].same_values(t) and e[1] == T0 + 50 for e, t in zip(events, trades, strict=True))
    assert counters.trades_ingested == 3


async def test_duplicates_get_no_row_and_no_event(pool: Pool) -> None:
    """Repeats within a batch, across batches and with another ts are dropped, eventless."""
    counters = ProcessorCounters()
    first = [Received(trade(1), T0), Received(trade(1), T0), Received(trade(2), T0)]
    await run_until_flushed(writer(pool, counters), first)
    again = [
        Received(trade(2), T0),
        Received(trade(1, ts=T0 + 500, price="1"), T0),
        Received(trade(3), T0),
    ]
    await run_until_flushed(writer(pool, counters), again)
    assert [s[0].trade_id for s in await stored_trades(pool)] == [1, 2, 3]
    assert [e[0].trade_id for e in await trade_events(pool)] == [1, 2, 3]
    assert next(s[0] for s in await stored_trades(pool) if s[0].trade_id == 1).price == Decimal(
        "27123.45"
    )
    assert (counters.trades_ingested, counters.duplicates_dropped) == (3, 3)


async def test_quarantine_and_gaps_never_reach_trades(pool: Pool) -> None:
    """Quarantined frames and gaps are stored in their own tables, with no trade or event."""
    counters = ProcessorCounters()
    records: list[Record] = [
        Quarantined("not json \\x00", "frame is not JSON", T0),
        Gap(T0 - 1000, T0, "disconnected"),
        Received(trade(9), T0),
    ]
    await run_until_flushed(writer(pool, counters), records)
    assert (await count(pool, "trades"), await count(pool, "events")) == (1, 1)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT payload, error, received_at FROM quarantine")
        assert await cur.fetchall() == [
            ("not json \\x00", "frame is not JSON", datetime_from_ms(T0))
        ]
        cur = await conn.execute("SELECT start_ts, end_ts, reason FROM feed_gaps")
        assert await cur.fetchall() == [
            (datetime_from_ms(T0 - 1000), datetime_from_ms(T0), "disconnected")
        ]
    assert (counters.frames_quarantined, counters.gaps_recorded) == (1, 1)


async def test_trade_the_database_refuses_is_quarantined_alone(pool: Pool) -> None:
    """A trade the database refuses (zero price) is quarantined; the rest of its batch is kept."""
    counters = ProcessorCounters()
    bad = Trade("BTC", 5, T0, Decimal(0), Decimal(1))
    await run_until_flushed(
        writer(pool, counters), [Received(trade(4), T0), Received(bad, T0), Received(trade(6), T0)]
    )
    assert [s[0].trade_id for s in await stored_trades(pool)] == [4, 6]
    assert len(await trade_events(pool)) == 2
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT payload, error FROM quarantine")
        [(payload, error)] = await cur.fetchall()
    assert '"tradeId": 5' in payload
    assert error.startswith("rejected by the database")


async def test_conflicting_trade_in_same_transaction_gets_no_event(pool: Pool) -> None:
    """write_batch returns only the trades it really inserted."""
    async with pool.connection() as conn:
        first = await write_batch(conn, [Received(trade(1), T0)], [], [])
        second = await write_batch(conn, [Received(trade(1), T0), Received(trade(2), T0)], [], [])
    assert [r.trade.trade_id for r in first.inserted] == [1]
    assert [r.trade.trade_id for r in second.inserted] == [2]
    assert second.conflicts == 1
    assert await count(pool, "events") == 2


async def test_full_queue_makes_the_producer_wait(pool: Pool) -> None:
    """With the writer stopped, put() blocks once queue_size records wait; it resumes after."""
    w = writer(pool, ProcessorCounters(), queue_size=3)
    for i in range(3):
        await w.put(Received(trade(i), T0))
    blocked = asyncio.create_task(w.put(Received(trade(3), T0)))
    await asyncio.sleep(0.1)
    assert not blocked.done()
    assert w.queued == 3
    async with asyncio.TaskGroup() as group:
        task = group.create_task(w.run())
        await blocked
        await w.flush()
        task.cancel()
    assert await count(pool, "trades") == 4


async def test_batches_respect_the_batch_size(pool: Pool) -> None:
    """250 records with batch_size 100 are written in at least 3 transactions, all stored."""
    counters = ProcessorCounters()
    w = writer(pool, counters, batch_size=100, queue_size=1000)
    records: list[Record] = [Received(trade(i), T0) for i in range(250)]
    for record in records:
        await w.put(record)
    await run_until_flushed(w, [])
    assert w.batches_written >= 3
    assert counters.trades_ingested == await count(pool, "events") == 250


async def test_trades_in_verified_range_are_not_reinserted(pool: Pool) -> None:
    """A late frame older than the symbol's verified_until is dropped (REST already decided)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO symbols (symbol, verified_until) VALUES ('BTC', %s)",
            (datetime_from_ms(T0 + 10),),
        )
        result = await write_batch(
            conn, [Received(trade(9), T0), Received(trade(10), T0), Received(trade(11), T0)], [], []
        )
    assert [r.trade.trade_id for r in result.inserted] == [10, 11]
    assert result.conflicts == 1


async def test_offer_queues_only_while_there_is_room(pool: Pool) -> None:
    """``offer`` queues without waiting until the queue is full, then refuses and queues
    nothing; the refused record goes in with ``put`` once the writer made room."""
    counters = ProcessorCounters()
    w = writer(pool, counters, queue_size=2)
    records = [Received(trade(i), T0) for i in (1, 2, 3)]
    assert [w.offer(r) for r in records] == [True, True, False]
    assert w.queued == 2
    await run_until_flushed(w, records[2:])
    assert sorted(t.trade_id for t, *_ in await stored_trades(pool)) == [1, 2, 3]
    assert counters.trades_ingested == 3


async def test_a_refused_batch_is_halved_until_the_bad_trade_stands_alone(pool: Pool) -> None:
    """One trade the database refuses among 64: the other 63 are stored with their events in
    a handful of transactions (the halves without it, one per halving), not one per trade."""
    counters = ProcessorCounters()
    w = writer(pool, counters, batch_size=64, queue_size=64)
    records = [Received(trade(i), T0) for i in range(1, 65)]
    records[40] = Received(Trade("BTC", 41, T0 + 41, Decimal(0), Decimal(1)), T0)
    assert all(w.offer(r) for r in records)  # one batch: all queued before the writer runs
    await run_until_flushed(w, [])
    assert [s[0].trade_id for s in await stored_trades(pool)] == [
        i for i in range(1, 65) if i != 41
    ]
    assert len(await trade_events(pool)) == 63
    assert await count(pool, "quarantine") == 1
    # 6 halvings of 64 -> 6 committed halves, then the quarantined trade: 7, not 64.
    assert w.batches_written == 7


async def test_ids_below_the_newest_stored_are_checked_one_by_one(pool: Pool) -> None:
    """A trade whose id is above every stored id of its symbol is inserted without a lookup;
    one below is looked up: stored (under another time) it is skipped, missing it is inserted;
    each symbol's newest id is its own."""
    async with pool.connection() as conn:
        await write_batch(conn, [Received(trade(1), T0), Received(trade(5), T0)], [], [])
        await write_batch(conn, [Received(trade(50, symbol="ETH"), T0)], [], [])
        result = await write_batch(
            conn,
            [
                Received(trade(3), T0),  # below BTC's newest (5), not stored: inserted
                Received(trade(5, ts=T0 + 999, price="1"), T0),  # stored at another time
                Received(trade(7), T0),  # above BTC's newest
                Received(trade(6, symbol="ETH"), T0),  # below ETH's newest, not stored
                Received(trade(50, symbol="ETH", ts=T0 + 1), T0),  # ETH's newest again
                Received(trade(2, symbol="SOL"), T0),  # a symbol with nothing stored
            ],
            [],
            [],
        )
    inserted = [(r.trade.symbol, r.trade.trade_id) for r in result.inserted]
    assert inserted == [("BTC", 3), ("BTC", 7), ("ETH", 6), ("SOL", 2)]
    assert result.conflicts == 2
    stored = {(s[0].symbol, s[0].trade_id): s[0] for s in await stored_trades(pool)}
    assert set(stored) == {("BTC", 1), ("BTC", 3), ("BTC", 5), ("BTC", 7), ("ETH", 6),
                           ("ETH", 50), ("SOL", 2)}  # fmt: skip
    assert stored[("BTC", 5)].price == Decimal("27123.45")
    assert await count(pool, "events") == 7


async def _queued_refreshes(pool: Pool) -> list[tuple[int, int]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT start_ts, end_ts FROM aggregate_refresh_queue ORDER BY id")
        return [(ms_from_datetime(s), ms_from_datetime(e)) for s, e in await cur.fetchall()]


async def test_late_trades_queue_their_range_for_an_aggregate_refresh(pool: Pool) -> None:
    """TimescaleDB mode: trades whose 10-second bucket a refresh policy (10 s end_offset) may
    materialise before the batch commits have their span queued with them (readers then sum
    those buckets from trades); later trades, repeats and plain mode queue nothing. At
    T0 + 69 s a policy run one second later materialises [T0 + 50 s, T0 + 60 s), so its trade
    9.5 s old is queued (a cutoff of 10 s before now left it out)."""
    now = T0 + 69_000
    w = BatchWriter(
        pool,
        ProcessorCounters(),
        batch_size=50,
        flush_interval_ms=20,
        queue_size=100,
        materialised_lag_ms=10_000,
        clock_ms=lambda: now,
    )
    late = [trade(1, ts=now - 45_000), trade(2, symbol="ETH", ts=T0 + 59_999)]
    fresh = [trade(3, ts=T0 + 60_000), trade(4, ts=now)]
    await run_until_flushed(w, [Received(t, now) for t in (*late, *fresh)])
    assert await _queued_refreshes(pool) == [(now - 45_000, T0 + 60_000)]
    await run_until_flushed(w, [Received(t, now) for t in (*late, *fresh)])  # all repeats
    assert len(await _queued_refreshes(pool)) == 1
    plain = writer(pool, ProcessorCounters())
    await run_until_flushed(plain, [Received(trade(5, ts=now - 45_000), now)])
    assert len(await _queued_refreshes(pool)) == 1
    assert await count(pool, "trades") == 5


@given(
    now=st.integers(min_value=0, max_value=10**13),
    ts=st.integers(min_value=0, max_value=10**13),
    lag=st.sampled_from([0, 10_000, 60_000]),
)
def test_materialised_cutoff_splits_trades_at_what_a_refresh_can_reach(
    now: int, ts: int, lag: int
) -> None:
    """A trade before the cutoff has its bucket materialisable by now + the commit margin
    (bucket end + lag <= now + margin); one at or after it has not (so no needless queueing
    and, more importantly, no trade a policy refresh reaches before the commit left out)."""
    bucket_end = ts - ts % FINEST_BUCKET_MS + FINEST_BUCKET_MS
    reachable = bucket_end + lag <= now + COMMIT_MARGIN_MS
    assert (ts < materialised_cutoff(now, lag)) == reachable


def _losing_connection(
    monkeypatch: pytest.MonkeyPatch, *, after_commit: bool
) -> list[BatchResult | None]:
    """Make the writer's first write_batch call fail as a dropped connection does: after its
    transaction committed (the acknowledgement lost) or before it started. Returns the list of
    the real calls' results (None for the one that never ran)."""
    calls: list[BatchResult | None] = []

    async def flaky(*args: Any, **kwargs: Any) -> BatchResult:
        first = not calls
        if first and not after_commit:
            calls.append(None)
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        result = await write_batch(*args, **kwargs)
        calls.append(result)
        if first:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(writer_module, "write_batch", flaky)
    return calls


def _mixed_batch() -> list[Record]:
    return [
        Quarantined("not json", "frame is not JSON", T0),
        Gap(T0 - 1000, T0, "disconnected"),
        Received(trade(1), T0),
        Received(trade(2), T0),
    ]


async def _quarantine_and_gaps(pool: Pool) -> tuple[int, int]:
    return await count(pool, "quarantine"), await count(pool, "feed_gaps")


async def test_a_batch_whose_commit_acknowledgement_is_lost_is_not_written_twice(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after COMMIT: the writer retries, finds its batch recorded as its
    last commit and skips it. Quarantined frames and gaps (which have no natural key) are
    stored once, and the counters show what the commit really did (not two repeats)."""
    calls = _losing_connection(monkeypatch, after_commit=True)
    counters = ProcessorCounters()
    await run_until_flushed(writer(pool, counters, retry_max_ms=10), _mixed_batch())
    assert len(calls) == 1  # the retry found the batch committed and did not write it again
    assert await _quarantine_and_gaps(pool) == (1, 1)
    assert [e[0].trade_id for e in await trade_events(pool)] == [1, 2]
    assert (counters.trades_ingested, counters.duplicates_dropped) == (2, 0)
    assert (counters.frames_quarantined, counters.gaps_recorded) == (1, 1)


async def test_a_batch_lost_before_its_commit_is_written_on_retry(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops before the batch committed: the retry writes it, once; the next
    batch of the same writer is written normally."""
    calls = _losing_connection(monkeypatch, after_commit=False)
    counters = ProcessorCounters()
    w = writer(pool, counters, retry_max_ms=10)
    await run_until_flushed(w, _mixed_batch())
    await run_until_flushed(w, [Received(trade(3), T0), Quarantined("x", "frame is not JSON", T0)])
    assert [c is not None for c in calls] == [False, True, True]
    assert await _quarantine_and_gaps(pool) == (2, 1)
    assert [s[0].trade_id for s in await stored_trades(pool)] == [1, 2, 3]
    assert (counters.trades_ingested, counters.frames_quarantined) == (3, 2)


async def test_the_commit_check_waits_for_a_commit_in_flight(pool: Pool) -> None:
    """committed_counts, asked while the batch's first transaction (the writer's very first, so
    its row does not exist yet) is still open, waits for it and then reports it committed."""
    key = BatchKey(uuid.uuid4(), 1)
    async with pool.connection() as first, pool.connection() as second:
        async with first.transaction():
            await write_batch(first, [Received(trade(7), T0)], [], [], key=key)

            async def check() -> BatchCounts | None:
                async with second.transaction():
                    return await committed_counts(second, key)

            task = asyncio.create_task(check())
            await asyncio.sleep(0.3)
            assert not task.done()  # blocked on the uncommitted row
        assert await task == BatchCounts(inserted=1, conflicts=0, quarantined=0, gaps=0)
        async with second.transaction():
            assert await committed_counts(second, BatchKey(key.writer, 2)) is None
