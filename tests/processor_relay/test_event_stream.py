"""Following the event log: an open stream notices the log being replaced under it (a database
restored from an older backup), whether the new log is still shorter or has already grown past
the stream's position; it never goes on as if the new events were the ones it skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from processor.db import Pool
from processor.event_log import LoggedEvent, NewEvent, append_events
from processor.event_stream import PositionElsewhere, SequenceAhead, follow_events
from processor.head_watch import HeadWatcher


def _event(n: int) -> NewEvent:
    return NewEvent("BTC", "trading.trade.BTC", "trading.v1.TradeEvent", bytes([n]))


async def _append(pool: Pool, count: int, start: int) -> None:
    async with pool.connection() as conn, conn.transaction():
        await append_events(conn, [_event(start + i) for i in range(count)])


async def _restore(pool: Pool, keep: int) -> None:
    """The database as a backup holding the first ``keep`` events left it."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM events WHERE seq > %s", (keep,))
        await conn.execute("UPDATE event_head SET seq = %s", (keep,))


async def _next(stream: AsyncIterator[LoggedEvent]) -> LoggedEvent:
    return await asyncio.wait_for(anext(stream), timeout=10)


@pytest.mark.parametrize("grown", [0, 5])
async def test_an_open_stream_notices_the_log_replaced_under_it(
    pool: Pool, database_url: str, grown: int
) -> None:
    """Three events streamed; the log is cut back to one, then ``grown`` new events are
    appended (0: it ends before the stream's position; 5: it is already past it). The
    stream's next read raises instead of delivering the new log from the old position."""
    await _append(pool, 3, start=1)
    stopping = asyncio.Event()
    async with HeadWatcher(database_url) as watcher:
        stream = follow_events(pool, watcher, from_seq=1, symbols=(), stopping=stopping)
        seen = [(await _next(stream)).seq for _ in range(3)]
        await asyncio.sleep(0.01)  # the new log's events are published at later instants
        await _restore(pool, keep=1)
        if grown:
            await _append(pool, grown, start=10)
        with pytest.raises((SequenceAhead, PositionElsewhere)) as caught:
            await _next(stream)
        await stream.aclose()
    assert seen == [1, 2, 3]
    assert caught.value.head == 1 + grown
    assert type(caught.value) is (PositionElsewhere if grown else SequenceAhead)


async def test_a_stream_of_an_unchanged_log_goes_on(pool: Pool, database_url: str) -> None:
    """The check costs nothing in behaviour: a stream resumed with the publish time it saw,
    and followed as the log grows, delivers every event once, in order."""
    await _append(pool, 2, start=1)
    stopping = asyncio.Event()
    async with HeadWatcher(database_url) as watcher:
        first = follow_events(pool, watcher, from_seq=1, symbols=(), stopping=stopping)
        seen = [await _next(first), await _next(first)]
        await first.aclose()
        resumed = follow_events(
            pool,
            watcher,
            from_seq=3,
            symbols=(),
            stopping=stopping,
            last_publish_ms=seen[-1].created_ms,
        )
        await _append(pool, 1, start=3)
        third = await _next(resumed)
        await _append(pool, 1, start=4)
        fourth = await _next(resumed)
        await resumed.aclose()
    assert [e.seq for e in (*seen, third, fourth)] == [1, 2, 3, 4]
