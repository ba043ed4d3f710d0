"""Verify one window against REST's trades in one transaction, announcing every change.

The transaction, in order:

1. lock the symbol's row (``symbols ... FOR NO KEY UPDATE``): windows of one symbol apply one
   at a time (a lock that still lets the planner insert the symbol's ledger rows: their
   foreign-key check takes FOR KEY SHARE, which FOR UPDATE blocked into a deadlock); then
   the symbol's trades lock (``trade_lock``), shared with the ingest writer;
2. read the window's stored trades, plus stored copies of REST's missing trade ids that sit at a
   time outside the window (a trade stored with a wrong time is one UPDATED correction, moved
   into this window, not an insert here and a delete elsewhere);
3. diff (pure) and apply: deletes, value updates, time changes (delete + insert, same id),
   inserts; REST's values are written with ``source='rest'``, ``verified=true``;
4. flag every trade of the window verified, record each change in ``corrections``, upsert the
   ledger row as verified (counts add up over re-verifications);
5. advance ``symbols.verified_until`` when the window starts at or before the watermark, then
   on over verified ledger windows that follow contiguously, stopping at (and reopening) one
   the feed stored a trade in after it was verified; and move ``symbols.verified_from`` back
   when the window ends at or after it (a backfill), then on back over verified ledger
   windows before it;
6. TimescaleDB mode: queue the window for a continuous-aggregate refresh when it changed;
7. LAST, append the events: one CorrectionEvent per change, then one WindowVerifiedEvent.

Re-verifying a window that already equals REST changes nothing and appends only its
WindowVerifiedEvent (change_count 0): every verification is announced, no correction twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from processor.db import Connection, Pool
from processor.event_log import append_events
from processor.events import (
    Correction,
    CorrectionKind,
    WindowOutcome,
    correction_event,
    window_event,
)
from processor.reconcile import storage
from processor.reconcile.diff import diff_window
from processor.reconcile.errors import UnknownSymbolRow
from processor.stats import ProcessorCounters
from processor.trade_lock import lock_symbol_trades
from tradekit.domain import TimeWindow, Trade


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What verifying one window did, and the symbol's verified range after it."""

    outcome: WindowOutcome
    corrections: tuple[Correction, ...]
    verified_until_ms: int
    verified_from_ms: int | None


async def _advance(conn: Connection, symbol: str, watermark: int, window: TimeWindow) -> int:
    """The watermark after ``window``: its end when it reaches the watermark, then on over the
    verified ledger windows that follow, except one holding a trade stored after it was
    verified (a window beyond the watermark stays open to the feed): that one is reopened
    (pending, planned again) and the watermark stops at its start."""
    if not window.start_ms <= watermark < window.end_ms:
        return watermark
    watermark = window.end_ms
    while (end := await storage.verified_end_from(conn, symbol, watermark)) is not None:
        ahead = TimeWindow(watermark, end)
        if await storage.unverified_trade_in(conn, symbol, ahead):
            await storage.reopen_windows(conn, symbol, ahead)
            break
        watermark = end
    return watermark


async def _extend_back(
    conn: Connection, symbol: str, start: int | None, window: TimeWindow
) -> int | None:
    """Where the verified range begins after ``window``: its start when it reaches back to the
    range's start (a backfill), then on back over the verified ledger windows before it."""
    if start is None or not window.start_ms < start <= window.end_ms:
        return start
    start = window.start_ms
    while (earlier := await storage.verified_start_to(conn, symbol, start)) is not None:
        start = earlier
    return start


async def verify_window_in(
    conn: Connection,
    symbol: str,
    window: TimeWindow,
    rest: Sequence[Trade],
    *,
    timescale: bool,
) -> WindowResult:
    """Make ``window`` equal ``rest`` inside the caller's transaction (see the module doc)."""
    verified = await storage.verified_range(conn, symbol, lock=True)
    if verified is None:
        raise UnknownSymbolRow(f"no symbols row for {symbol!r}; the reconciler creates it")
    watermark = verified.until_ms
    await lock_symbol_trades(conn, [symbol])
    stored = await storage.stored_trades(conn, symbol, window)
    stored_ids = {t.trade_id for t in stored}
    missing = [t.trade_id for t in rest if t.trade_id not in stored_ids]
    strays = await storage.stray_copies(conn, symbol, window, missing)
    corrections = diff_window([*stored, *strays], rest)

    deleted = [c.old for c in corrections if c.kind is CorrectionKind.DELETED and c.old]
    updated = [c for c in corrections if c.kind is CorrectionKind.UPDATED]
    moved = [c for c in updated if c.old and c.new and c.old.ts_ms != c.new.ts_ms]
    revalued = [c.new for c in updated if c.new and c not in moved]
    inserted = [c.new for c in corrections if c.kind is CorrectionKind.INSERTED and c.new]
    await storage.delete_trades(conn, [*deleted, *(c.old for c in moved if c.old)])
    await storage.update_values(conn, revalued)
    await storage.insert_rest_trades(conn, [*(c.new for c in moved if c.new), *inserted])
    await storage.mark_verified(conn, symbol, window)

    ids = await storage.record_corrections(conn, window, corrections)
    outcome = WindowOutcome(
        symbol=symbol,
        window=window,
        trade_count=len(rest),
        inserted=len(inserted),
        updated=len(updated),
        deleted=len(deleted),
    )
    await storage.record_verified(conn, outcome)
    new_watermark = await _advance(conn, symbol, watermark, window)
    if new_watermark != watermark:
        await storage.set_verified_until(conn, symbol, new_watermark)
    start = verified.from_ms
    new_start = await _extend_back(conn, symbol, start, window)
    if new_start is not None and new_start != start:
        await storage.set_verified_from(conn, symbol, new_start)
    if timescale and corrections:
        await storage.queue_aggregate_refresh(conn, _span(window, corrections))
    events = [correction_event(c, window, i) for c, i in zip(corrections, ids, strict=True)]
    await append_events(conn, [*events, window_event(outcome, new_watermark, new_start)])
    return WindowResult(outcome, tuple(corrections), new_watermark, new_start)


def _span(window: TimeWindow, corrections: Sequence[Correction]) -> TimeWindow:
    """The window widened to the old times of moved trades (their buckets changed too)."""
    times = [c.old.ts_ms for c in corrections if c.old is not None]
    return TimeWindow(min([window.start_ms, *times]), max([window.end_ms, *(t + 1 for t in times)]))


def count(counters: ProcessorCounters, outcome: WindowOutcome) -> None:
    """Add a committed window's outcome to the counters."""
    counters.windows_verified += 1
    counters.corrections_inserted += outcome.inserted
    counters.corrections_updated += outcome.updated
    counters.corrections_deleted += outcome.deleted


async def verify_window(
    pool: Pool,
    symbol: str,
    window: TimeWindow,
    rest: Sequence[Trade],
    *,
    timescale: bool,
    counters: ProcessorCounters,
) -> WindowResult:
    """Verify ``window`` in its own transaction and count it once committed."""
    async with pool.connection() as conn, conn.transaction():
        result = await verify_window_in(conn, symbol, window, rest, timescale=timescale)
    count(counters, result.outcome)
    return result
