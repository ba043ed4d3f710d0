"""Replay the event log from a sequence, then continue live: no gap, no duplicate.

Sequences are commit-ordered (see ``event_log``): once the head is H, every event up to H is
committed and visible, so reading ``[cursor, H]`` and then waiting for the head to pass H
hands off from replay to live without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from processor.db import RPC_CONNECTION_WAIT_S, Pool
from processor.event_log import LoggedEvent, head_sequence, read_events
from processor.head_watch import HeadWatcher

_BATCH = 500


async def follow_events(
    pool: Pool,
    watcher: HeadWatcher,
    *,
    from_seq: int,
    symbols: Sequence[str],
    stopping: asyncio.Event,
    batch: int = _BATCH,
) -> AsyncIterator[LoggedEvent]:
    """Yield events with ``seq >= from_seq`` for ``symbols`` (all when empty) until
    ``stopping`` is set; replay first, then live."""
    cursor = max(from_seq, 1)
    while not stopping.is_set():
        async with pool.connection(timeout=RPC_CONNECTION_WAIT_S) as conn:
            head = await head_sequence(conn)
            events = await read_events(
                conn, from_seq=cursor, symbols=symbols, limit=batch, through_seq=head
            )
        for event in events:
            yield event
        if len(events) == batch:
            cursor = events[-1].seq + 1
            continue
        cursor = max(cursor, head + 1)
        waiter = asyncio.ensure_future(watcher.wait_beyond(head, patience_s=1.0))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stop):
                task.cancel()
            await asyncio.gather(waiter, stop, return_exceptions=True)
