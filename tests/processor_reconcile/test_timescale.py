"""Continuous-aggregate refresh after corrections (TimescaleDB only; skipped elsewhere)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processor.db import open_pool
from processor.reconcile import storage
from processor.reconcile.apply import verify_window
from processor.reconcile.config import ReconcileConfig
from processor.reconcile.scheduler import Reconciler
from processor.schema import StorageMode, migrate
from processor.stats import ProcessorCounters
from tests.processor_reconcile.dbhelp import seed, trade
from tradekit.domain import TimeWindow


async def test_refresh_drains_the_queue_and_buckets_match(database_url: str) -> None:
    """After the refresh the queue is empty and minute buckets show REST's values."""
    if await migrate(database_url, "auto") is not StorageMode.TIMESCALE:
        pytest.skip("TimescaleDB with continuous aggregates is not available")
    window = TimeWindow(60_000, 120_000)
    async with open_pool(database_url, min_size=1, max_size=2) as pool:
        async with pool.connection() as conn:
            await storage.ensure_symbol(conn, "BTC", window.start_ms)
            await seed(conn, [trade(1, 61_000, "9"), trade(2, 62_000, "3")])
        rest = [trade(1, 61_000, "10", "2")]
        await verify_window(pool, "BTC", window, rest, timescale=True, counters=ProcessorCounters())
        reconciler = Reconciler(
            pool=pool,
            proxy_address="127.0.0.1:1",
            symbols=[],
            counters=ProcessorCounters(),
            config=ReconcileConfig(),
            storage_mode_timescale=True,
        )
        assert await reconciler.refresh_aggregates() == 1
        async with pool.connection() as conn:
            assert await storage.pending_refreshes(conn) == []
            cur = await conn.execute(
                "SELECT notional, volume, trade_count FROM trade_buckets_1m WHERE symbol = 'BTC'"
            )
            assert await cur.fetchall() == [(Decimal(20), Decimal(2), 1)]
