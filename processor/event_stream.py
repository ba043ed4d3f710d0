"""Replay the event log from a sequence, then continue live: no gap, no duplicate.

Sequences are commit-ordered (see ``event_log``): once the head is H, every event up to H is
committed and visible, so reading ``[cursor, H]`` and then waiting for the head to pass H
hands off from replay to live without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from processor.db import RPC_CONNECTION_WAIT_S, Pool
from processor.event_log import (
    LoggedEvent,
    head_and_publish_ms,
    log_state,
    read_retained_events,
)
from processor.head_watch import HeadWatcher
from tradekit.timetext import iso_ms

_BATCH = 500


class ForeignPosition(Exception):
    """A stream's position cannot be served from this log (OUT_OF_RANGE): it comes from
    another event log (a database replaced or restored from an older backup: the events
    before it are not the ones the client saw), or retention removed the events after it."""

    def __init__(self, message: str, head: int) -> None:
        super().__init__(message)
        #: The newest event of this log.
        self.head = head
        #: When that event was published (None: the log is empty), for the client to quote as
        #: ``last_publish_time`` when it resumes after it.
        self.head_published_ms: int | None = None


class SequenceAhead(ForeignPosition):
    """A stream's position is past the next sequence the log will write (asked so, or the log
    moved back under an open stream)."""

    def __init__(self, position: int, head: int) -> None:
        super().__init__(
            f"sequence {position} is past the end of the event log (newest event {head}):"
            f" resume with at most {head + 1}; a larger position comes from another event log"
            " (a database replaced or restored), so events may have been lost to you",
            head,
        )


class PositionElsewhere(ForeignPosition):
    """The last event a client saw (quoted by last_publish_time, or passed on this stream: sent,
    or skipped by its symbol filter) is not in this log as it saw it (another publish time, or
    none): the log was replaced and has grown past the client's position."""

    def __init__(self, seq: int, seen_ms: int, actual_ms: int | None, head: int) -> None:
        actual = (
            f"this log has no event {seq}"
            if actual_ms is None
            else f"event {seq} of this log was published {iso_ms(actual_ms)}"
        )
        super().__init__(
            f"{actual}, not {iso_ms(seen_ms)} as your stream saw it: the log was replaced or"
            " restored since, so events may have been lost to you; drop what you derived from"
            f" the events you received and resume after this log's newest event {head}",
            head,
        )


class PositionPruned(ForeignPosition):
    """A stream's position is under the log's floor: the events from it up to the floor were
    removed by retention (EVENT_LOG_RETENTION), so the client would miss them."""

    def __init__(self, position: int, floor: int, head: int) -> None:
        super().__init__(
            f"events {position} to {floor - 1} are no longer in the event log (events are"
            f" kept for EVENT_LOG_RETENTION once published; the oldest kept is {floor}):"
            " drop what you derived from the events you received, read the current state"
            f" (GetVwap, GetTrades, GetCoverage) and resume after the newest event {head}, or"
            f" from {floor} for the events still kept",
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

    Every read checks that the log is still the one followed, or raises: ``SequenceAhead``
    when the position is past the next sequence (head + 1), as asked or because the log moved
    back under the stream (waiting would skip the events before it without a word);
    ``PositionElsewhere`` when the last event passed (sent or, for a stream of some symbols,
    skipped; before the first: event from_seq - 1 as ``last_publish_ms`` quotes it) has
    another publish time here, or none (the log was replaced and grew past the position);
    ``PositionPruned`` when retention removed events from the position on (``from_seq`` 0 or 1
    starts at the oldest event kept)."""
    cursor = max(from_seq, 1)
    # From the oldest event kept, wherever retention has moved it, until the first read.
    from_floor = from_seq <= 1
    # (sequence, publish ms) of the last event passed (the client's, then the head read
    # through), when known.
    last: tuple[int, int] | None = None
    if last_publish_ms is not None and cursor > 1:
        last = (cursor - 1, last_publish_ms)
    while not stopping.is_set():
        async with pool.connection(timeout=RPC_CONNECTION_WAIT_S) as conn:
            head, floor, published = await log_state(conn, last[0] if last else None)
            if from_floor:
                cursor = max(cursor, floor)
            foreign: ForeignPosition | None = None
            if cursor > head + 1:
                foreign = SequenceAhead(cursor, head)
            elif cursor < floor:
                foreign = PositionPruned(cursor, floor, head)
            elif (
                last is not None
                and (last[0] >= floor or published is not None)
                and published != last[1]
            ):
                # (retention records the publish time of floor - 1 only: an older event it
                # removed cannot be compared, and its successor is not kept either)
                foreign = PositionElsewhere(last[0], last[1], published, head)
            if foreign is None:
                floor, head_ms, events = await read_retained_events(
                    conn, from_seq=cursor, symbols=symbols, limit=batch, through_seq=head
                )
                if floor > cursor and from_floor:
                    continue  # retention moved the floor meanwhile: read from it
                if floor > cursor:  # retention removed events the read may have missed
                    foreign = PositionPruned(cursor, floor, head)
            if foreign is not None:
                # a client resuming after the head quotes its publish time, so that a log
                # replaced again before it receives an event is noticed too
                _, foreign.head_published_ms = await head_and_publish_ms(conn, head)
                raise foreign
        from_floor = False
        for event in events:
            yield event
        if len(events) == batch:
            last = (events[-1].seq, events[-1].created_ms)
            cursor = events[-1].seq + 1
            continue
        # Read through the head: it is the position passed, sent or not (a stream of some
        # symbols may have sent nothing for long; retention keeps the newest event, not the
        # last one of a symbol, whose publish time could then no longer be compared).
        if head_ms is not None:
            last = (head, head_ms)
        elif events:
            last = (events[-1].seq, events[-1].created_ms)
        cursor = max(cursor, head + 1)
        waiter = asyncio.ensure_future(watcher.wait_beyond(head, patience_s=1.0))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stop):
                task.cancel()
            await asyncio.gather(waiter, stop, return_exceptions=True)
