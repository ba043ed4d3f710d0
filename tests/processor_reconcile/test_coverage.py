"""The coverage ledger as GetCoverage shows it (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from processor.db import Pool, open_pool
from processor.reconcile import storage
from processor.reconcile.apply import verify_window
from processor.reconcile.coverage import coverage
from processor.schema import migrate
from processor.stats import ProcessorCounters
from tests.processor_reconcile.dbhelp import trade
from tradekit.domain import TimeWindow


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on a migrated, empty database."""
    await migrate(database_url, "plain")
    async with open_pool(database_url, min_size=1, max_size=2) as pool:
        yield pool


async def test_ledger_rows_then_gap_and_live_after_the_watermark(pool: Pool) -> None:
    """Verified and pending rows come from the ledger; the rest is 'gap' or 'live'."""
    async with pool.connection() as conn:
        await storage.ensure_symbol(conn, "BTC", 0)
        await storage.mark_pending(conn, "BTC", [TimeWindow(120_000, 180_000)])
        await conn.execute(
            "INSERT INTO feed_gaps (start_ts, end_ts, reason) VALUES (%s, %s, 'disconnected')",
            (storage.to_dt(200_000), storage.to_dt(210_000)),
        )
    rest = [trade(1, 1_000, "5"), trade(2, 2_000, "6")]
    await verify_window(
        pool, "BTC", TimeWindow(0, 60_000), rest, timescale=False, counters=ProcessorCounters()
    )
    async with pool.connection() as conn:
        found = await coverage(conn, "BTC", TimeWindow(30_000, 300_000), now_ms=240_000)
    assert found.verified == storage.VerifiedRange(until_ms=60_000, from_ms=0)
    assert [(e.start_ms, e.end_ms, e.state, e.trade_count) for e in found.entries] == [
        (0, 60_000, "verified", 2),
        (60_000, 120_000, "live", 0),
        (120_000, 180_000, "pending", 0),
        (180_000, 200_000, "live", 0),
        (200_000, 210_000, "gap", 0),
        (210_000, 240_000, "live", 0),
    ]


async def test_unknown_symbol_has_no_watermark(pool: Pool) -> None:
    """A symbol never reconciled has verified_until None and only synthesized entries."""
    async with pool.connection() as conn:
        found = await coverage(conn, "ETH", TimeWindow(0, 1_000))
    assert found.verified is None
    assert [(e.state, e.start_ms, e.end_ms) for e in found.entries] == [("live", 0, 1_000)]
