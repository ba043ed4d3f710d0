"""Replay the event log from a sequence, then continue live: no gap, no duplicate.

Sequences are commit-ordered (see ``event_log``): once the head is H, every event up to H is
committed and visible, so reading ``[cursor, H]`` and then waiting for the head to pass H
hands off from replay to live without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from processor.db import RPC_CONNECTION_WAIT_S, Pool
from processor.event_log import LoggedEvent, head_sequence, publish_ms, read_events
from processor.head_watch import HeadWatcher
from tradekit.timetext import iso_ms

_BATCH = 500


class ForeignPosition(Exception):
    """A stream's starting position comes from another event log (a database replaced or
    restored from an older backup): the events before it are not the ones the client saw."""

    def __init__(self, message: str, head: int) -> None:
        super().__init__(message)
        #: The newest event of this log.
        self.head = head


class SequenceAhead(ForeignPosition):
    """A stream asked to start past the next sequence the log will write."""

    def __init__(self, from_seq: int, head: int) -> None:
        super().__init__(
            f"from_sequence {from_seq} is past the end of the event log (newest event {head}):"
            f" resume with at most {head + 1}; a larger position comes from another event log"
            " (a database replaced or restored), so events may have been lost to you",
            head,
        )


class PositionElsewhere(ForeignPosition):
    """The event before a stream's start is not the one the client saw (another publish
    time, or none): the log was replaced and has grown past the client's position."""

    def __init__(self, seq: int, seen_ms: int, actual_ms: int | None, head: int) -> None:
        actual = "is not in this log" if actual_ms is None else f"was published {iso_ms(actual_ms)}"
        super().__init__(
            f"event {seq} of this log {actual}, not {iso_ms(seen_ms)} as last_publish_time"
            " says: the log was replaced or restored since, so events may have been lost to"
            f" you; drop what you derived from it and resume after its newest event {head}",
            head,
        )


async def follow_events(
    pool: Pool,
    watcher: HeadWatcher,
    *,
    from_seq: int,
    symbols: Sequence[str],
    stopping: asyncio.Event,
    last_publish_ms: int | None = None,
    batch: int = _BATCH,
) -> AsyncIterator[LoggedEvent]:
    """Yield events with ``seq >= from_seq`` for ``symbols`` (all when empty) until
    ``stopping`` is set; replay first, then live.

    Raises ``SequenceAhead`` before yielding anything when ``from_seq`` is past the next
    sequence (head + 1): waiting for it would skip the events before it without a word; and
    ``PositionElsewhere`` when ``last_publish_ms`` (what the client saw of event from_seq - 1)
    is not that event's publish time here."""
    cursor = max(from_seq, 1)
    first = True
    while not stopping.is_set():
        async with pool.connection(timeout=RPC_CONNECTION_WAIT_S) as conn:
            head = await head_sequence(conn)
            if first:
                if cursor > head + 1:
                    raise SequenceAhead(cursor, head)
                if last_publish_ms is not None and cursor > 1:
                    actual = await publish_ms(conn, cursor - 1)
                    if actual != last_publish_ms:
                        raise PositionElsewhere(cursor - 1, last_publish_ms, actual, head)
            first = False
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
