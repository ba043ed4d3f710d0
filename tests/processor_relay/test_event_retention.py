"""Event-log retention: only events past retention that the relay has published go (never the
last one it published), a prefix at a time, with the floor StreamEvents checks; a stream
under the floor is refused instead of skipping the removed events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from processor.db import Pool
from processor.event_log import LoggedEvent, NewEvent, append_events, log_state
from processor.event_retention import EventRetention
from processor.event_stream import PositionElsewhere, PositionPruned, follow_events
from processor.head_watch import HeadWatcher

WEEK_MS = 7 * 86_400_000


async def _append(pool: Pool, count: int, symbol: str = "BTC") -> None:
    async with pool.connection() as conn, conn.transaction():
        await append_events(
            conn,
            [NewEvent(symbol, f"trading.trade.{symbol}", "trading.v1.TradeEvent", b"x")] * count,
        )


async def _age(pool: Pool, through_seq: int, days: int = 8) -> None:
    """Events up to ``through_seq`` as if published ``days`` ago."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE events SET created_at = now() - %s * INTERVAL '1 day' WHERE seq <= %s",
            (days, through_seq),
        )


async def _published(pool: Pool, seq: int) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE event_relay SET published_seq = %s", (seq,))


async def _kept(pool: Pool) -> tuple[list[int], int]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT seq FROM events ORDER BY seq")
        seqs = [int(s) for (s,) in await cur.fetchall()]
        state = await log_state(conn, None)
    return seqs, state.floor


async def _next(stream: AsyncIterator[LoggedEvent]) -> LoggedEvent:
    return await asyncio.wait_for(anext(stream), timeout=10)


async def test_only_published_events_past_retention_go(pool: Pool) -> None:
    """Ten events, the first eight a week and a day old. With the relay at 6, events 1-5 go
    (the relay's last one stays, its recovery compares the stream's tail with it); with the
    relay at 10, events 6-8 go and the recent ones stay; batches of 2 take them all."""
    await _append(pool, 10)
    await _age(pool, 8)
    retention = EventRetention(pool=pool, retention_ms=WEEK_MS, batch=2)
    assert await retention.prune() == 0  # nothing published yet
    await _published(pool, 6)
    assert await retention.prune() == 5
    assert await _kept(pool) == ([6, 7, 8, 9, 10], 6)
    await _published(pool, 10)
    assert await retention.prune() == 3
    assert await _kept(pool) == ([9, 10], 9)
    assert retention.pruned == 8


async def test_an_old_event_after_a_recent_one_waits(pool: Pool) -> None:
    """Only a prefix goes (the floor promises every event from it on): an old event behind a
    recent one (a long transaction's publish time) stays until the recent one goes."""
    await _append(pool, 4)
    await _age(pool, 1)
    async with pool.connection() as conn:
        await conn.execute("UPDATE events SET created_at = now() - INTERVAL '8 days' WHERE seq = 3")
    await _published(pool, 4)
    assert await EventRetention(pool=pool, retention_ms=WEEK_MS).prune() == 1
    assert await _kept(pool) == ([2, 3, 4], 2)


async def test_a_stream_under_the_floor_is_refused_and_one_from_the_start_begins_at_it(
    pool: Pool, database_url: str
) -> None:
    """After events 1-5 were removed: resuming at 3 is PositionPruned naming the oldest kept
    and the newest; from 0 starts at 6; resuming at 6 goes on when it quotes the publish time
    of the removed event 5 as it was (retention records it with the floor) and is refused as
    another log's position when it quotes another; and an open stream that
    lags under the floor when retention runs is refused at its next read instead of jumping
    over the removed events."""
    await _append(pool, 10)
    stopping = asyncio.Event()
    async with HeadWatcher(database_url) as watcher:
        lagging = follow_events(pool, watcher, from_seq=1, symbols=(), stopping=stopping, batch=2)
        first_two = [(await _next(lagging)).seq for _ in range(2)]
        await _age(pool, 8)
        await _published(pool, 6)
        async with pool.connection() as conn:
            fifth_ms = (await log_state(conn, 5)).published_ms
        assert fifth_ms is not None
        await EventRetention(pool=pool, retention_ms=WEEK_MS).prune()
        with pytest.raises(PositionPruned) as lagged:
            [(await _next(lagging)).seq for _ in range(3)]
        await lagging.aclose()

        resumed = follow_events(pool, watcher, from_seq=3, symbols=(), stopping=stopping)
        with pytest.raises(PositionPruned) as refused:
            await _next(resumed)
        await resumed.aclose()

        from_start = follow_events(pool, watcher, from_seq=0, symbols=(), stopping=stopping)
        assert (await _next(from_start)).seq == 6
        await from_start.aclose()

        at_floor = follow_events(
            pool, watcher, from_seq=6, symbols=(), stopping=stopping, last_publish_ms=fifth_ms
        )
        assert (await _next(at_floor)).seq == 6
        await at_floor.aclose()

        elsewhere = follow_events(
            pool, watcher, from_seq=6, symbols=(), stopping=stopping, last_publish_ms=fifth_ms + 1
        )
        with pytest.raises(PositionElsewhere):  # the client's event 5 is not this log's
            await _next(elsewhere)
        await elsewhere.aclose()
    assert first_two == [1, 2]
    assert "events 3 to 5 are no longer in the event log" in str(lagged.value)
    assert "events 3 to 5 are no longer" in str(refused.value)
    assert "the oldest kept is 6" in str(refused.value)
    assert (refused.value.head, refused.value.head_published_ms is not None) == (10, True)


async def test_a_stream_of_a_quiet_symbol_notices_the_log_replaced_past_the_floor(
    pool: Pool, database_url: str
) -> None:
    """An ETH stream sent event 1 and read through BTC's events 2-10. Retention then removes
    1-5, so event 1's publish time can no longer be compared; the log is replaced from 8 on
    and grows to 12 with ETH events. The stream compares the newest event it read through
    (10, now another publish time) and is refused, instead of going on at 11 as if the new
    log's ETH events 8-10 were BTC events it had skipped."""
    await _append(pool, 1, symbol="ETH")
    await _append(pool, 9)
    stopping = asyncio.Event()
    async with HeadWatcher(database_url) as watcher:
        stream = follow_events(pool, watcher, from_seq=1, symbols=("ETH",), stopping=stopping)
        first = await _next(stream)
        await _age(pool, 8)
        await _published(pool, 6)
        assert await EventRetention(pool=pool, retention_ms=WEEK_MS).prune() == 5
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM events WHERE seq > 7")
            await conn.execute("UPDATE event_head SET seq = 7")
        await asyncio.sleep(0.01)  # the new log's events are published at later instants
        await _append(pool, 5, symbol="ETH")
        with pytest.raises(PositionElsewhere) as caught:
            await _next(stream)
        await stream.aclose()
    assert first.seq == 1
    assert "event 10 of this log was published" in str(caught.value)
    assert caught.value.head == 12


async def test_zero_keeps_every_event(pool: Pool) -> None:
    """EVENT_LOG_RETENTION=0s: no task, nothing deleted however old."""
    await _append(pool, 3)
    await _age(pool, 3, days=3650)
    await _published(pool, 3)
    async with EventRetention(pool=pool, retention_ms=0, period_s=0.01) as retention:
        await asyncio.sleep(0.1)
    assert retention.pruned == 0
    assert await _kept(pool) == ([1, 2, 3], 1)


async def test_the_owned_task_prunes_periodically(pool: Pool) -> None:
    """Entered, it prunes on its own every period, not only when it starts: events that age
    while it runs go too."""
    await _append(pool, 3)
    async with EventRetention(pool=pool, retention_ms=WEEK_MS, period_s=0.05) as retention:
        await asyncio.sleep(0.2)  # its first turns: nothing old yet
        assert retention.pruned == 0
        await _age(pool, 2)
        await _published(pool, 3)
        for _ in range(200):
            if retention.pruned:
                break
            await asyncio.sleep(0.05)
    assert await _kept(pool) == ([3], 3)
