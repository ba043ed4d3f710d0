"""Verifying one window against REST in one transaction (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from trading.v1 import events_pb2

from processor.db import Pool, open_pool
from processor.event_log import read_events
from processor.ingest.records import Received
from processor.ingest.storage import write_batch
from processor.reconcile import storage
from processor.reconcile.apply import verify_window, verify_window_in
from processor.reconcile.errors import UnknownSymbolRow
from processor.schema import migrate
from processor.stats import ProcessorCounters
from tests.processor_reconcile.dbhelp import same, seed, stored, trade
from tradekit.domain import TimeWindow
from tradekit.wire import ms_from_timestamp

W = TimeWindow(60_000, 120_000)
REST = [
    trade(1, 60_000, "10.5", "2"),
    trade(2, 61_000, "11", "1"),
    trade(3, 62_000, "12", "3"),
    trade(4, 63_000, "13", "1"),
    trade(5, 64_000, "14", "0.5"),
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on a migrated, empty database with BTC at watermark 60 000."""
    await migrate(database_url, "plain")
    async with open_pool(database_url, min_size=1, max_size=4) as pool:
        async with pool.connection() as conn:
            await storage.ensure_symbol(conn, "BTC", W.start_ms)
        yield pool


async def _window_events(pool: Pool) -> list[events_pb2.WindowVerifiedEvent]:
    """BTC's WindowVerifiedEvents, in order."""
    async with pool.connection() as conn:
        events = await read_events(conn, from_seq=1, symbols=["BTC"], limit=100)
    return [
        events_pb2.WindowVerifiedEvent.FromString(e.payload)
        for e in events
        if e.subject == "trading.window.BTC"
    ]


async def seed_corrupted(pool: Pool) -> None:
    async with pool.connection() as conn:
        await seed(
            conn,
            [
                trade(1, 60_000, "10.50", "2.0"),  # equal, other scale
                trade(2, 61_000, "11.5", "1"),  # wrong price
                trade(3, 62_500, "12", "3"),  # wrong time
                trade(5, 130_000, "14", "0.5"),  # wrong time, outside the window
                trade(99, 65_000, "1", "1"),  # phantom
                trade(7, 125_000, "1", "1"),  # next window: untouched
            ],
        )


async def test_window_ends_equal_to_rest_with_recorded_corrections(pool: Pool) -> None:
    """Missing, extra, wrong-valued and wrong-time trades end exactly as REST says."""
    await seed_corrupted(pool)
    counters = ProcessorCounters()
    result = await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    assert (result.outcome.inserted, result.outcome.updated, result.outcome.deleted) == (1, 3, 1)
    async with pool.connection() as conn:
        rows = await stored(conn, "BTC")
        assert same([t for t in rows if W.contains(t.ts_ms)], REST)
        assert [t.trade_id for t in rows if not W.contains(t.ts_ms)] == [7]
        cur = await conn.execute(
            "SELECT count(*) FROM trades WHERE symbol = 'BTC' AND ts < %s"
            " AND (NOT verified OR (trade_id <> 1 AND source <> 'rest'))",
            (storage.to_dt(W.end_ms),),
        )
        assert await cur.fetchone() == (0,)
        cur = await conn.execute(
            "SELECT trade_id, kind, old_price, new_price, old_ts, new_ts FROM corrections"
            " ORDER BY id"
        )
        got = await cur.fetchall()
    assert [(r[0], r[1]) for r in got] == [
        (2, "updated"),
        (3, "updated"),
        (4, "inserted"),
        (5, "updated"),
        (99, "deleted"),
    ]
    assert got[0][2:4] == (Decimal("11.5"), Decimal("11"))
    assert storage.to_ms(got[1][4]) == 62_500
    assert storage.to_ms(got[1][5]) == 62_000
    assert storage.to_ms(got[3][4]) == 130_000
    assert result.verified_until_ms == W.end_ms
    assert counters.windows_verified == 1
    assert counters.corrections_updated == 3


async def test_events_announce_each_correction_then_the_window(pool: Pool) -> None:
    """CorrectionEvents with their correction ids come first, the WindowVerifiedEvent last."""
    await seed_corrupted(pool)
    await verify_window(pool, "BTC", W, REST, timescale=False, counters=ProcessorCounters())
    async with pool.connection() as conn:
        events = await read_events(conn, from_seq=1, symbols=["BTC"], limit=100)
        cur = await conn.execute("SELECT id FROM corrections ORDER BY id")
        ids = [r[0] for r in await cur.fetchall()]
    assert [e.subject for e in events] == ["trading.correction.BTC"] * 5 + ["trading.window.BTC"]
    corrections = [events_pb2.CorrectionEvent.FromString(e.payload) for e in events[:-1]]
    assert [c.correction_id for c in corrections] == ids
    assert corrections[0].old_trade.price == "11.5"
    assert corrections[0].new_trade.price == "11"
    assert corrections[0].kind == events_pb2.CORRECTION_KIND_UPDATED
    window = events_pb2.WindowVerifiedEvent.FromString(events[-1].payload)
    assert (window.trade_count, window.change_count) == (5, 5)


async def test_second_verification_changes_nothing(pool: Pool) -> None:
    """Verifying the same window twice adds no correction, only a window event with 0 changes."""
    await seed_corrupted(pool)
    counters = ProcessorCounters()
    await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    again = await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    assert again.corrections == ()
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM corrections")
        assert await cur.fetchone() == (5,)
        events = await read_events(conn, from_seq=7, symbols=[], limit=10)
        cur = await conn.execute("SELECT state, change_count FROM coverage_windows")
        assert await cur.fetchall() == [("verified", 5)]
    assert len(events) == 1
    assert events_pb2.WindowVerifiedEvent.FromString(events[0].payload).change_count == 0


async def test_watermark_jumps_over_verified_windows_that_follow(pool: Pool) -> None:
    """A later window verified first does not move the watermark; closing the hole does."""
    later = TimeWindow(120_000, 180_000)
    counters = ProcessorCounters()
    first = await verify_window(pool, "BTC", later, [], timescale=False, counters=counters)
    assert first.verified_until_ms == W.start_ms
    second = await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    assert second.verified_until_ms == later.end_ms
    announced = await _window_events(pool)
    # Each WindowVerifiedEvent carries the watermark after it: readers need not guess the order.
    assert [ms_from_timestamp(w.verified_until, field="v") for w in announced] == [
        W.start_ms,
        later.end_ms,
    ]


async def test_a_feed_trade_stored_ahead_of_the_watermark_reopens_its_window(pool: Pool) -> None:
    """A window verified ahead of the watermark stays open to the feed; a trade stored in it
    afterwards (a late phantom) stops the watermark there and sends the window back to be
    verified, which removes the phantom; the watermark then moves on."""
    later = TimeWindow(120_000, 180_000)
    counters = ProcessorCounters()
    await verify_window(pool, "BTC", later, [], timescale=False, counters=counters)
    phantom = trade(77, 150_000, "999", "1")
    async with pool.connection() as conn:
        result = await write_batch(conn, [Received(phantom, received_ms=1)], [], [])
    assert [r.trade for r in result.inserted] == [phantom]  # beyond the watermark: stored

    closed = await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    assert closed.verified_until_ms == later.start_ms
    async with pool.connection() as conn:
        planned_again = later.start_ms not in await storage.verified_starts_after(
            conn, "BTC", closed.verified_until_ms
        )
        cur = await conn.execute(
            "SELECT state FROM coverage_windows WHERE start_ts = %s",
            (storage.to_dt(later.start_ms),),
        )
        assert await cur.fetchone() == ("pending",)
    assert planned_again

    again = await verify_window(pool, "BTC", later, [], timescale=False, counters=counters)
    assert [c.old for c in again.corrections] == [phantom]
    assert again.verified_until_ms == later.end_ms
    async with pool.connection() as conn:
        assert [t.trade_id for t in await stored(conn, "BTC")] == [t.trade_id for t in REST]
        cur = await conn.execute(
            "SELECT state, deleted FROM coverage_windows WHERE start_ts = %s",
            (storage.to_dt(later.start_ms),),
        )
        assert await cur.fetchone() == ("verified", 1)


async def test_a_verification_and_the_planner_on_the_same_window_do_not_deadlock(
    pool: Pool,
) -> None:
    """A verification (a Backfill of a recent window) holding the symbol's lock while the
    planner records the same window pending: both commit. With FOR UPDATE the planner's
    foreign-key check waited on the symbol row while the verification waited on the planner's
    ledger row, and PostgreSQL aborted one of them."""
    locked = asyncio.Event()

    async def verification() -> None:
        async with pool.connection() as conn, conn.transaction():
            await storage.verified_range(conn, "BTC", lock=True)
            locked.set()
            await asyncio.sleep(0.3)  # the planner's insert is under way meanwhile
            await verify_window_in(conn, "BTC", W, REST, timescale=False)

    async def planner() -> None:
        await locked.wait()
        async with pool.connection() as conn, conn.transaction():
            await storage.mark_pending(conn, "BTC", [W])

    async with asyncio.timeout(20):
        await asyncio.gather(verification(), planner())
    async with pool.connection() as conn:
        assert same(await stored(conn, "BTC"), REST)


async def test_timescale_flag_queues_changed_windows_only(pool: Pool) -> None:
    """With the TimescaleDB flag a changed window is queued for refresh, an unchanged one not."""
    await seed_corrupted(pool)
    counters = ProcessorCounters()
    await verify_window(pool, "BTC", W, REST, timescale=True, counters=counters)
    await verify_window(pool, "BTC", W, REST, timescale=True, counters=counters)
    async with pool.connection() as conn:
        queued = await storage.pending_refreshes(conn)
    assert [(s, e) for _, s, e in queued] == [(W.start_ms, 130_001)]


async def test_unknown_symbol_is_refused(pool: Pool) -> None:
    """A symbol without a reconciliation row cannot be verified."""
    with pytest.raises(UnknownSymbolRow):
        await verify_window(pool, "ETH", W, [], timescale=False, counters=ProcessorCounters())


async def test_aggregates_stay_exact_after_corrections(pool: Pool) -> None:
    """Plain-mode minute buckets equal a Decimal computation from the corrected trades."""
    await seed_corrupted(pool)
    await verify_window(pool, "BTC", W, REST, timescale=False, counters=ProcessorCounters())
    async with pool.connection() as conn:
        rows = await stored(conn, "BTC")
        cur = await conn.execute(
            "SELECT bucket, notional, volume, trade_count, open, high, low, close"
            " FROM trade_buckets_1m WHERE symbol = 'BTC' ORDER BY bucket"
        )
        buckets = [(storage.to_ms(b), *rest) for b, *rest in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT notional, volume, trade_count FROM trade_buckets_1h WHERE symbol = 'BTC'"
        )
        hours = await cur.fetchall()
    expected = []
    for minute in sorted({t.ts_ms // 60_000 * 60_000 for t in rows}):
        group = [t for t in rows if t.ts_ms // 60_000 * 60_000 == minute]
        expected.append(
            (
                minute,
                sum((t.notional for t in group), Decimal(0)),
                sum((t.quantity for t in group), Decimal(0)),
                len(group),
                group[0].price,
                max(t.price for t in group),
                min(t.price for t in group),
                group[-1].price,
            )
        )
    assert buckets == expected
    assert hours == [
        (
            sum((t.notional for t in rows), Decimal(0)),
            sum((t.quantity for t in rows), Decimal(0)),
            len(rows),
        )
    ]


async def test_backfilled_windows_move_the_start_of_the_verified_range_back(pool: Pool) -> None:
    """The range begins where the first run began (history before it is verified only by a
    backfill); a backfilled window reaching it moves it back, then on over earlier verified
    windows (backfilled out of order); a window before a hole does not; events carry it."""
    counters = ProcessorCounters()
    first = await verify_window(pool, "BTC", W, REST, timescale=False, counters=counters)
    assert (first.verified_from_ms, first.verified_until_ms) == (W.start_ms, W.end_ms)
    early, hole, late = (
        TimeWindow(0, 20_000),
        TimeWindow(20_000, 40_000),
        TimeWindow(40_000, W.start_ms),
    )
    apart = await verify_window(pool, "BTC", early, [], timescale=False, counters=counters)
    assert apart.verified_from_ms == W.start_ms  # a hole before the range: not yet
    reached = await verify_window(pool, "BTC", late, [], timescale=False, counters=counters)
    assert reached.verified_from_ms == late.start_ms
    closed = await verify_window(pool, "BTC", hole, [], timescale=False, counters=counters)
    assert (closed.verified_from_ms, closed.verified_until_ms) == (0, W.end_ms)
    async with pool.connection() as conn:
        assert await storage.verified_range(conn, "BTC") == storage.VerifiedRange(W.end_ms, 0)
    announced = await _window_events(pool)
    assert [ms_from_timestamp(w.verified_from, field="f") for w in announced] == [
        W.start_ms,
        W.start_ms,
        late.start_ms,
        0,
    ]
