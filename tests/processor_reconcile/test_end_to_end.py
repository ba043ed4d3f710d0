"""Reconciliation against a real proxy in front of a hostile simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC
from decimal import Decimal

import pytest
from trading.v1 import events_pb2

from processor.db import Pool, open_pool
from processor.event_log import read_events
from processor.reconcile import storage
from processor.reconcile.config import ReconcileConfig
from processor.reconcile.errors import (
    ProviderUnknownSymbol,
    RangeNotSettled,
    RangeTooLarge,
    UnlistableWindow,
)
from processor.reconcile.scheduler import Reconciler
from processor.schema import migrate
from processor.stats import ProcessorCounters
from simulator.tape import TapeParams
from tests.processor_reconcile.dbhelp import same, seed, stored
from tests.processor_reconcile.providers import Provider, hostile_provider
from tradekit.domain import TimeWindow, Trade
from tradekit.wire import MIN_TIMESTAMP_MS

CONFIG = ReconcileConfig(window_ms=2_000, settle_ms=1_000, interval_ms=100, page_wait_ms=20_000)


def _reconciler(
    pool: Pool,
    provider: Provider,
    *,
    symbols: list[str],
    counters: ProcessorCounters,
    config: ReconcileConfig = CONFIG,
) -> Reconciler:
    """A plain-mode reconciler in front of ``provider``, on its clock."""
    return Reconciler(
        pool=pool,
        proxy_address=provider.proxy_address,
        symbols=symbols,
        counters=counters,
        config=config,
        storage_mode_timescale=False,
        clock=provider.clock,
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on a migrated, empty database."""
    await migrate(database_url, "plain")
    async with open_pool(database_url, min_size=1, max_size=8) as pool:
        yield pool


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """Hostile simulator with 20 s of history behind a real proxy."""
    async with hostile_provider() as provider:
        yield provider


def corrupt(truth: list[Trade], rng: random.Random) -> list[Trade]:
    """The feed's view of ``truth``: some dropped, some altered or moved, phantoms added."""
    out: list[Trade] = []
    for t in truth:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.2:
            out.append(dataclasses.replace(t, price=t.price + Decimal("0.01")))
        elif roll < 0.25:
            out.append(dataclasses.replace(t, quantity=t.quantity * 2))
        elif roll < 0.3:
            out.append(dataclasses.replace(t, ts_ms=t.ts_ms + 1_500))
        else:
            out.append(t)
    base = truth[-1].trade_id + 1_000_000 if truth else 1
    out += [dataclasses.replace(rng.choice(truth), trade_id=base + i) for i in range(5) if truth]
    return out


async def wait_verified(pool: Pool, symbol: str, until_ms: int, timeout_s: float = 40) -> int:
    """Poll until ``verified_until`` reaches ``until_ms``; return it."""
    async with asyncio.timeout(timeout_s):
        while True:
            async with pool.connection() as conn:
                watermark = await storage.verified_until(conn, symbol)
            if watermark is not None and watermark >= until_ms:
                return watermark
            await asyncio.sleep(0.1)


async def test_reconciler_makes_a_corrupted_range_equal_to_the_truth(
    pool: Pool, provider: Provider
) -> None:
    """Dropped, altered, moved and phantom trades end exactly as the simulator's truth."""
    start = (provider.sim.start_ms // CONFIG.window_ms + 1) * CONFIG.window_ms
    end = start + 4 * CONFIG.window_ms
    truth = provider.truth("BTC", start, end)
    assert len(truth) > 50
    async with pool.connection() as conn:
        await storage.ensure_symbol(conn, "BTC", start)
        await seed(conn, corrupt(truth, random.Random(3)))
    counters = ProcessorCounters()
    async with _reconciler(pool, provider, symbols=["BTC"], counters=counters):
        watermark = await wait_verified(pool, "BTC", end)
    async with pool.connection() as conn:
        rows = [t for t in await stored(conn, "BTC") if t.ts_ms < watermark]
    assert same(rows, provider.truth("BTC", start, watermark))
    assert counters.corrections_inserted > 0
    assert counters.corrections_updated > 0
    assert counters.corrections_deleted == 5


async def test_backfill_verifies_history_below_the_watermark(
    pool: Pool, provider: Provider
) -> None:
    """Backfill yields progress per window, fills the range widened to whole windows (never a
    ledger window overlapping another), and leaves the watermark alone."""
    start = (provider.sim.start_ms // CONFIG.window_ms + 1) * CONFIG.window_ms
    watermark = start + 4 * CONFIG.window_ms
    async with pool.connection() as conn:
        await storage.ensure_symbol(conn, "BTC", watermark)
    reconciler = _reconciler(pool, provider, symbols=[], counters=ProcessorCounters())
    async with reconciler:
        progress = [
            p async for p in reconciler.backfill("BTC", TimeWindow(start + 500, start + 4_000))
        ]
        with pytest.raises(RangeNotSettled):
            async for _ in reconciler.backfill("BTC", TimeWindow(start, provider.clock())):
                pass
        found = await reconciler.coverage("BTC", TimeWindow(start, watermark))
    assert [(p.windows_done, p.windows_total) for p in progress] == [(1, 2), (2, 2)]
    assert [(p.window.start_ms, p.window.end_ms) for p in progress] == [
        (start, start + 2_000),
        (start + 2_000, start + 4_000),
    ]
    assert progress[-1].complete
    # [start + 4 s, watermark) is not backfilled: the verified range cannot reach back over it
    assert found.verified == storage.VerifiedRange(until_ms=watermark, from_ms=watermark)
    assert [(e.start_ms, e.state) for e in found.entries] == [
        (start, "verified"),
        (start + 2_000, "verified"),
    ]
    async with pool.connection() as conn:
        rows = await stored(conn, "BTC")
    assert same(rows, provider.truth("BTC", start, start + 4_000))
    assert sum(p.trade_count for p in progress) == len(rows)


async def test_gap_windows_are_verified_first(pool: Pool, provider: Provider) -> None:
    """A window overlapping a feed gap is verified before the older windows before it."""
    start = (provider.sim.start_ms // CONFIG.window_ms + 1) * CONFIG.window_ms
    gap_window = start + 3 * CONFIG.window_ms
    async with pool.connection() as conn:
        await storage.ensure_symbol(conn, "BTC", start)
        await conn.execute(
            "INSERT INTO feed_gaps (start_ts, end_ts, reason) VALUES (%s, %s, 'stale')",
            (storage.to_dt(gap_window + 100), storage.to_dt(gap_window + 200)),
        )
    config = dataclasses.replace(CONFIG, interval_ms=60_000, concurrency=1)
    async with _reconciler(
        pool, provider, symbols=["BTC"], counters=ProcessorCounters(), config=config
    ):
        await wait_verified(pool, "BTC", gap_window + CONFIG.window_ms)
    async with pool.connection() as conn:
        events = await read_events(conn, from_seq=1, symbols=["BTC"], limit=1000)
    starts = [
        storage.to_ms(
            events_pb2.WindowVerifiedEvent.FromString(e.payload).window.start_time.ToDatetime(
                tzinfo=UTC
            )
        )
        for e in events
        if e.subject == "trading.window.BTC"
    ]
    assert starts[:4] == [gap_window, start, start + 2_000, start + 4_000]


async def test_a_window_rest_cannot_answer_is_counted_and_holds_the_watermark(
    pool: Pool,
) -> None:
    """Same-millisecond clusters of up to 150 trades: REST's 100-trade pages cannot list them,
    so such a window is refused every turn (counted in windows_rejected), stays unverified
    and holds the watermark at its start; the windows before it are verified. A Backfill over
    it verifies the windows before it and then fails with UnlistableWindow (gRPC:
    FAILED_PRECONDITION; it was INVALID_ARGUMENT, as if the request were wrong)."""
    tape = TapeParams(rate=100.0, cluster_rate=0.5, cluster_max=150)
    async with hostile_provider(tape=tape) as provider:
        start = (provider.sim.start_ms // CONFIG.window_ms + 1) * CONFIG.window_ms
        end = start + 6 * CONFIG.window_ms
        crowded = [
            w
            for w in range(start, end, CONFIG.window_ms)
            if max(
                Counter(t.ts_ms for t in provider.truth("BTC", w, w + CONFIG.window_ms)).values(),
                default=0,
            )
            > 100
        ]
        assert crowded, "the tape must hold a millisecond with more than 100 trades"
        async with pool.connection() as conn:
            await storage.ensure_symbol(conn, "BTC", start)
        counters = ProcessorCounters()
        async with _reconciler(pool, provider, symbols=["BTC"], counters=counters) as reconciler:
            # The hostile REST API may still be failing an earlier window when the crowded one
            # has been refused twice: wait for both, the watermark never passing crowded[0].
            for _ in range(600):
                found = await reconciler.coverage("BTC", TimeWindow(start, end))
                assert found.verified is not None
                if counters.windows_rejected >= 2 and found.verified.until_ms >= crowded[0]:
                    break
                await asyncio.sleep(0.05)
            backfilled: list[int] = []

            async def backfill() -> None:
                async for progress in reconciler.backfill("BTC", TimeWindow(start, end)):
                    backfilled.append(progress.window.start_ms)

            with pytest.raises(UnlistableWindow, match="one millisecond"):
                await backfill()
    assert backfilled == list(range(start, crowded[0], CONFIG.window_ms))
    assert counters.windows_rejected >= 2  # tried again on the next turn
    assert found.verified.until_ms == crowded[0]
    states = {e.start_ms: e.state for e in found.entries}
    assert states[crowded[0]] == "pending"
    assert all(states[w] == "verified" for w in range(start, crowded[0], CONFIG.window_ms))


async def test_a_backfill_is_bounded_before_any_work(pool: Pool, provider: Provider) -> None:
    """A range of billions of windows (year 1 to the settled past) is refused at once by count,
    and a Backfill of a ticker the provider does not know leaves no trace: the symbol stays
    unknown (it used to keep a symbols row, making GetCoverage and GetVwap answer for it)."""
    reconciler = _reconciler(pool, provider, symbols=[], counters=ProcessorCounters())
    settled = provider.clock() - 60_000
    async with reconciler:
        with pytest.raises(RangeTooLarge, match=r"covers \d{11,} windows"):
            async for _ in reconciler.backfill("BTC", TimeWindow(MIN_TIMESTAMP_MS, settled)):
                pass
        with pytest.raises(ProviderUnknownSymbol):
            async for _ in reconciler.backfill("DOGE", TimeWindow(settled - 4_000, settled)):
                pass
    async with pool.connection() as conn:
        assert await storage.verified_range(conn, "DOGE") is None
        assert await storage.verified_range(conn, "BTC") is None


async def test_the_symbol_rows_are_made_before_the_first_turn(
    pool: Pool, provider: Provider
) -> None:
    """Entering the reconciler makes each symbol's row (its watermark at the current window's
    start) before its loop runs, so before the processor starts its feed: a trade stored
    before the first turn made the row would lie below the watermark that turn set, never
    verified (found by review). The clock reads an earlier window while entering than after:
    the rows carry the earlier one."""
    width = CONFIG.window_ms
    entering = [True]
    now = provider.clock()

    def clock() -> int:
        return now - 10 * width if entering[0] else now

    reconciler = Reconciler(
        pool=pool,
        proxy_address=provider.proxy_address,
        symbols=["BTC"],
        counters=ProcessorCounters(),
        config=CONFIG,
        storage_mode_timescale=False,
        clock=clock,
    )
    async with reconciler:
        entering[0] = False  # at once: the loop has not run yet
        async with pool.connection() as conn:
            found = await storage.verified_range(conn, "BTC")
    assert found is not None
    assert found.from_ms == (now - 10 * width) // width * width
