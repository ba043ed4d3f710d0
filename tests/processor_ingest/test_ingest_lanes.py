"""Writer lanes: symbols dealt to parallel writers, each committing on its own (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import psycopg
import pytest

from processor.db import Pool
from processor.ingest.lanes import WriterLanes, deal_symbols
from processor.ingest.records import Gap, Quarantined, Received, Record
from processor.ingest.storage import newest_ws_trade_ms
from processor.stats import ProcessorCounters
from processor.trade_lock import lock_symbol_trades
from tests.processor_ingest.stored import count, stored_trades, trade_events
from tradekit.domain import Trade

T0 = 1_700_000_000_000
SYMBOLS = ("ADA", "BTC", "DOGE", "ETH", "SOL")


def lanes(pool: Pool, counters: ProcessorCounters, n: int) -> WriterLanes:
    """Lanes over SYMBOLS with small batches and a short flush interval."""
    return WriterLanes(
        pool,
        counters,
        symbols=SYMBOLS,
        lanes=n,
        batch_size=7,
        flush_interval_ms=5,
        queue_size=40,
    )


def received(symbol: str, trade_id: int) -> Received:
    """A trade of ``symbol`` with exact values derived from its id."""
    price = Decimal(f"{1000 + trade_id}.{trade_id:04d}")
    return Received(Trade(symbol, trade_id, T0 + trade_id, price, Decimal("0.5")), T0 + trade_id)


async def put_all(w: WriterLanes, records: Sequence[Record]) -> None:
    """Queue ``records`` in order and wait until every one is committed."""
    for record in records:
        await w.put(record)
    await w.flush()


def test_symbols_are_dealt_round_robin_in_sorted_order() -> None:
    """Every symbol has one lane, lanes differ by at most one symbol, the order of the input
    does not matter, one lane takes everything."""
    dealt = deal_symbols(["SOL", "BTC", "ETH", "ADA", "BTC"], 2)
    assert dealt == {"ADA": 0, "BTC": 1, "ETH": 0, "SOL": 1}
    assert deal_symbols(reversed(SYMBOLS), 3) == deal_symbols(SYMBOLS, 3)
    assert set(deal_symbols(SYMBOLS, 1).values()) == {0}
    with pytest.raises(ValueError, match="at least one lane"):
        deal_symbols(SYMBOLS, 0)


def test_lanes_never_outnumber_symbols(pool: Pool) -> None:
    """Eight lanes over five symbols make five writers, each with one symbol."""
    w = WriterLanes(
        pool,
        ProcessorCounters(),
        symbols=SYMBOLS,
        lanes=8,
        batch_size=10,
        flush_interval_ms=5,
        queue_size=50,
    )
    assert len(w.writers) == 5
    assert w.symbol_lanes == [[s] for s in SYMBOLS]
    assert w.queue_size == 50


async def test_every_record_is_stored_once_with_each_symbol_s_events_in_feed_order(
    pool: Pool,
) -> None:
    """Interleaved trades of five symbols through three lanes, with quarantined frames and a
    gap: every trade stored exactly, one event each, each symbol's events in the order read."""
    counters = ProcessorCounters()
    w = lanes(pool, counters, 3)
    records: list[Record] = []
    for trade_id in range(1, 301):
        records.append(received(SYMBOLS[(trade_id * 7) % 5], trade_id))
        if trade_id % 50 == 0:
            records.append(Quarantined(f"bad {trade_id}", "not JSON", T0 + trade_id))
    records.append(Gap(T0 + 10, T0 + 20, "test gap"))
    async with asyncio.TaskGroup() as group:
        task = group.create_task(w.run())
        await put_all(w, records)
        task.cancel()
    sent = [r.trade for r in records if isinstance(r, Received)]
    stored = [s[0] for s in await stored_trades(pool)]
    assert sorted(t.sort_key for t in stored) == sorted(t.sort_key for t in sent)
    by_key = {t.sort_key: t for t in sent}
    assert all(t.same_values(by_key[t.sort_key]) for t in stored)
    events = [e[0] for e in await trade_events(pool)]
    assert len(events) == len(sent)
    for symbol in SYMBOLS:
        read = [t.trade_id for t in sent if t.symbol == symbol]
        assert [t.trade_id for t in events if t.symbol == symbol] == read
    assert (await count(pool, "quarantine"), await count(pool, "feed_gaps")) == (6, 1)
    assert counters.trades_ingested == 300
    assert w.queued == 0


async def test_a_lane_waiting_on_its_symbol_s_lock_does_not_hold_up_the_other(
    pool: Pool, database_url: str
) -> None:
    """While another session holds BTC's trades lock, ETH (the other lane) is committed; BTC is
    committed once the lock is released. With one lane, ETH waits behind BTC."""
    for n, eth_first in ((2, True), (1, False)):
        counters = ProcessorCounters()
        w = WriterLanes(
            pool,
            counters,
            symbols=["BTC", "ETH"],
            lanes=n,
            batch_size=10,
            flush_interval_ms=5,
            queue_size=100,
        )
        async with (
            await psycopg.AsyncConnection.connect(database_url) as holder,
            asyncio.TaskGroup() as group,
        ):
            await lock_symbol_trades(holder, ["BTC"])
            task = group.create_task(w.run())
            await w.put(received("BTC", 10 * n + 1))
            await w.put(received("ETH", 10 * n + 2))
            # Two lanes: ETH is committed soon (10 s bound for a loaded machine). One lane: it
            # waits behind BTC's lock, however long we look (half a second here).
            for _ in range(1000 if eth_first else 50):
                if counters.trades_ingested:
                    break
                await asyncio.sleep(0.01)
            assert (counters.trades_ingested == 1) is eth_first
            await holder.commit()
            await asyncio.wait_for(w.flush(), 10)
            task.cancel()
        assert {10 * n + 1, 10 * n + 2} <= {t.trade_id for t, *_ in await stored_trades(pool)}


async def test_the_restart_anchor_is_the_lane_that_fell_behind(pool: Pool) -> None:
    """Lanes commit independently, so after a kill one may be behind: the resume point is the
    earliest of the lanes' newest trades, the newest within a lane."""
    counters = ProcessorCounters()
    w = lanes(pool, counters, 1)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(w.run())
        await put_all(w, [received("BTC", 100), received("ETH", 40), received("SOL", 70)])
        task.cancel()
    async with pool.connection() as conn:
        assert await newest_ws_trade_ms(conn, [["BTC", "ETH", "SOL"]]) == T0 + 100
        assert await newest_ws_trade_ms(conn, [["BTC", "SOL"], ["ETH"]]) == T0 + 40
        assert await newest_ws_trade_ms(conn, [["BTC"], ["ETH", "SOL"]]) == T0 + 70
        assert await newest_ws_trade_ms(conn, [["BTC"], ["ADA"]]) == T0 + 100
        assert await newest_ws_trade_ms(conn, [["ADA"], ["DOGE"]]) is None
