"""The ingest service against the real simulator and a tiny local WebSocket server."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from websockets.asyncio.server import ServerConnection, serve

from processor.db import Pool
from processor.ingest.config import IngestConfig
from processor.ingest.service import RESTART_REASON, IngestService
from processor.ingest.storage import ms_from_datetime
from processor.stats import ProcessorCounters
from simulator.app import run_simulator
from simulator.config import SimConfig
from simulator.profiles import get_profile
from simulator.tape import TapeParams
from tests.processor_ingest.stored import count, stored_trades, trade_events

FAST = IngestConfig(
    batch_size=200,
    flush_interval_ms=20,
    backoff_initial_ms=20,
    backoff_max_ms=200,
    stale_timeout_ms=2_000,
    gap_margin_ms=0,
)


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def valid_frame(trade_id: int, *, ts: int | None = None) -> str:
    """A valid BTC frame made now."""
    return (
        f'{{"ticker": "BTC", "ts": {now_ms() if ts is None else ts}, "quantity": "0.5",'
        f' "price": 100.25, "tradeId": {trade_id}}}'
    )


@asynccontextmanager
async def local_server(
    handler: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[str]:
    """A WebSocket server on 127.0.0.1:<free port> running ``handler``; yields its URL."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/stream"


async def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``predicate`` every 20 ms until true; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls plain counters, nothing to await
            await asyncio.sleep(0.02)


async def duplicate_ids(pool: Pool) -> list[tuple[str, int]]:
    """(symbol, trade_id) pairs stored more than once."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT symbol, trade_id FROM trades GROUP BY symbol, trade_id HAVING count(*) > 1"
        )
        return [(str(s), int(i)) for s, i in await cur.fetchall()]


async def test_hostile_simulator_feed_is_stored_faithfully(pool: Pool) -> None:
    """Against a hostile feed: reconnects, gaps, quarantine, and only real or phantom trades."""
    hostile = get_profile("hostile").ws
    sim_config = SimConfig.for_profile(
        "hostile",
        port=0,
        seed=11,
        tape=TapeParams(rate=40.0),
        ws_faults=dataclasses.replace(hostile, disconnect=0.01, malformed=0.08),
    )
    counters = ProcessorCounters()
    async with run_simulator(sim_config) as sim:
        async with IngestService(
            pool=pool,
            ws_url=sim.ws_url,
            symbols=sim.tickers,
            counters=counters,
            config=FAST,
            rng=random.Random(1),
        ) as service:
            await wait_until(lambda: counters.gaps_recorded >= 2, timeout_s=20)
            await asyncio.sleep(0.5)
        faults = sim.stats.stream.faults
        truth = {(t.ticker, t.trade_id): t for s in sim.tickers for t in sim.truth.trades(s)}

    assert counters.connections == service.feed.connections >= 3
    assert await count(pool, "feed_gaps") == counters.gaps_recorded >= 2
    quarantined = await count(pool, "quarantine")
    assert 0 < quarantined == counters.frames_quarantined <= faults["malformed"]
    assert counters.duplicates_dropped > 0
    assert await duplicate_ids(pool) == []

    stored = await stored_trades(pool)
    assert len(stored) == counters.trades_ingested > 100
    phantoms = wrong_values = 0
    for trade, source, verified, _ in stored:
        assert (source, verified) == ("ws", False)
        real = truth.get((trade.symbol, trade.trade_id))
        if real is None:
            phantoms += 1
            continue
        assert trade.ts_ms == real.ts
        if (trade.price, trade.quantity) != (real.price, real.quantity):
            wrong_values += 1
    assert phantoms <= faults["phantom"]
    assert wrong_values <= faults["wrong_value"]

    events = await trade_events(pool)
    assert len(events) == len(stored)
    assert {(e.symbol, e.trade_id) for e, _ in events} == {
        (t.symbol, t.trade_id) for t, *_ in stored
    }

    async with pool.connection() as conn:
        cur = await conn.execute("SELECT start_ts, end_ts, reason FROM feed_gaps ORDER BY id")
        gaps = await cur.fetchall()
    assert all(start < end for start, end, _ in gaps)
    assert all(reason.startswith("disconnected") for _, _, reason in gaps)


async def test_silent_server_triggers_a_stale_reconnect(pool: Pool) -> None:
    """A server that sends only malformed frames after one valid one is reconnected quickly."""
    ids = iter(range(1, 1_000_000))

    async def handler(ws: ServerConnection) -> None:
        await ws.send(valid_frame(next(ids)))
        while True:
            await ws.send('{"ticker": "BTC"}')
            await asyncio.sleep(0.02)

    counters = ProcessorCounters()
    config = dataclasses.replace(FAST, stale_timeout_ms=300)
    async with local_server(handler) as url:
        started = time.monotonic()
        async with IngestService(
            pool=pool, ws_url=url, symbols=["BTC"], counters=counters, config=config
        ) as service:
            await wait_until(lambda: counters.gaps_recorded >= 1, timeout_s=5)
            elapsed = time.monotonic() - started
    assert service.feed.stale_reconnects >= 1
    assert counters.connections >= 2
    assert elapsed < 2.0
    assert counters.frames_quarantined > 0
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT reason FROM feed_gaps")
        reasons = [r for (r,) in await cur.fetchall()]
    assert reasons[0].startswith("stale: no valid frame for 300 ms")


async def test_restart_seeds_duplicates_and_records_the_downtime_gap(pool: Pool) -> None:
    """After a restart, frames already stored are dropped before the database and the time
    since the newest stored trade is recorded as a gap."""
    first_ts = now_ms() - 5_000
    frames = [valid_frame(i, ts=first_ts + i) for i in range(1, 6)]

    async def replay_then_new(ws: ServerConnection) -> None:
        for text in frames:
            await ws.send(text)
        await ws.send(valid_frame(99))
        await ws.wait_closed()

    async def replay(ws: ServerConnection) -> None:
        for text in frames:
            await ws.send(text)
        await ws.wait_closed()

    first = ProcessorCounters()
    async with (
        local_server(replay) as url,
        IngestService(pool=pool, ws_url=url, symbols=["BTC"], counters=first, config=FAST) as s,
    ):
        await wait_until(lambda: first.frames_received == 5, timeout_s=5)
        await s.flush()
    assert first.trades_ingested == 5
    assert await count(pool, "feed_gaps") == 0

    second = ProcessorCounters()
    async with (
        local_server(replay_then_new) as url,
        IngestService(pool=pool, ws_url=url, symbols=["BTC"], counters=second, config=FAST) as s,
    ):
        await wait_until(lambda: second.frames_received == 6, timeout_s=5)
        await s.flush()
    assert (second.trades_ingested, second.duplicates_dropped) == (1, 5)
    assert sorted(t.trade_id for t, *_ in await stored_trades(pool)) == [1, 2, 3, 4, 5, 99]
    assert len(await trade_events(pool)) == 6
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT start_ts, end_ts, reason FROM feed_gaps")
        [(start, end, reason)] = await cur.fetchall()
    assert reason == RESTART_REASON
    assert ms_from_datetime(start) == first_ts + 5
    assert ms_from_datetime(end) > ms_from_datetime(start)


async def test_refused_connections_are_retried_and_recorded_once(pool: Pool) -> None:
    """While the server is down the feed retries; the outage becomes one gap when it is back."""
    counters = ProcessorCounters()

    served: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        if not served:
            served.append(1)
            await ws.send(valid_frame(1))
        await ws.close()

    async def steady(ws: ServerConnection) -> None:
        for i in range(2, 5):
            await ws.send(valid_frame(i))
        await ws.wait_closed()

    first = await serve(handler, "127.0.0.1", 0)
    port = next(iter(first.sockets)).getsockname()[1]
    url = f"ws://127.0.0.1:{port}/stream"
    async with IngestService(
        pool=pool, ws_url=url, symbols=["BTC"], counters=counters, config=FAST
    ):
        await wait_until(lambda: counters.frames_received >= 1, timeout_s=5)
        first.close()
        await first.wait_closed()
        await asyncio.sleep(0.3)
        async with serve(steady, "127.0.0.1", port):
            await wait_until(lambda: counters.trades_ingested == 4, timeout_s=5)
    assert counters.trades_ingested == 4
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT reason FROM feed_gaps")
        [(reason,)] = await cur.fetchall()
    assert reason.startswith("disconnected")
    assert "connect failed" in reason
