"""The coverage ledger as ``GetCoverage`` shows it.

Ledger rows (pending and verified windows) overlapping the range come from
``coverage_windows``. The not-yet-verified time after ``verified_until`` that no ledger row
covers is synthesized: ``gap`` where a feed gap overlaps it, else ``live``. Synthesized entries
stop at ``now_ms`` when given (the future is not covered), have zero counts and ``updated_ms``
equal to their start.
"""

from __future__ import annotations

from dataclasses import dataclass

from processor.db import Connection
from processor.reconcile import storage
from tradekit.domain import TimeWindow


@dataclass(frozen=True, slots=True)
class CoverageEntry:
    """One coverage window: ``state`` is 'live', 'gap', 'pending' or 'verified'."""

    symbol: str
    start_ms: int
    end_ms: int
    state: str
    trade_count: int
    change_count: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """Coverage entries of a range by start, and the symbol's verified range (None when the
    symbol has no reconciliation row yet: nothing is verified)."""

    entries: list[CoverageEntry]
    verified: storage.VerifiedRange | None


def _uncovered(start: int, end: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of ``[start, end)`` outside every range of ``taken`` (sorted by start)."""
    parts: list[tuple[int, int]] = []
    cursor = start
    for lo, hi in taken:
        if lo > cursor:
            parts.append((cursor, min(lo, end)))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        parts.append((cursor, end))
    return [(lo, hi) for lo, hi in parts if lo < hi]


def synthesize(
    symbol: str, start: int, end: int, gaps: list[tuple[int, int]]
) -> list[CoverageEntry]:
    """``[start, end)`` split into 'gap' entries where ``gaps`` overlap and 'live' elsewhere."""
    entries: list[CoverageEntry] = []
    clipped = sorted((max(lo, start), min(hi, end)) for lo, hi in gaps if lo < end and hi > start)
    merged: list[tuple[int, int]] = []
    for lo, hi in clipped:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    for lo, hi in merged:
        entries.append(CoverageEntry(symbol, lo, hi, "gap", 0, 0, lo))
    for lo, hi in _uncovered(start, end, merged):
        entries.append(CoverageEntry(symbol, lo, hi, "live", 0, 0, lo))
    return sorted(entries, key=lambda e: e.start_ms)


async def coverage(
    conn: Connection, symbol: str, window: TimeWindow, *, now_ms: int | None = None
) -> Coverage:
    """Coverage entries overlapping ``window`` and the symbol's verified range."""
    verified = await storage.verified_range(conn, symbol)
    watermark = None if verified is None else verified.until_ms
    rows = await storage.ledger_rows(conn, symbol, window)
    entries = [
        CoverageEntry(
            r.symbol, r.start_ms, r.end_ms, r.state, r.trade_count, r.change_count, r.updated_ms
        )
        for r in rows
    ]
    start = window.start_ms if watermark is None else max(window.start_ms, watermark)
    end = window.end_ms if now_ms is None else min(window.end_ms, now_ms)
    if start < end:
        gaps = await storage.gaps_overlapping(conn, TimeWindow(start, end))
        taken = sorted((r.start_ms, r.end_ms) for r in rows)
        for lo, hi in _uncovered(start, end, taken):
            entries.extend(synthesize(symbol, lo, hi, gaps))
    return Coverage(sorted(entries, key=lambda e: (e.start_ms, e.end_ms)), verified)
