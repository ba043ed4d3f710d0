"""Split a millisecond range into raw-trade edges and whole UTC buckets (pure).

``plan_pieces(start, end)`` covers ``[start, end)`` exactly with the coarsest buckets that fit:
whole days inside, then whole hours, then whole minutes, then whole 10-second buckets, then raw
milliseconds at the edges (so a window reads at most 2 x 10 s of raw trades). Buckets are
aligned to the Unix epoch in UTC, which is the alignment of the aggregates.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TEN_SECONDS_MS = 10_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class Level(enum.Enum):
    """Where the sums of a piece come from; the value is the bucket width in ms (0: raw)."""

    RAW = 0
    TEN_SECONDS = TEN_SECONDS_MS
    MINUTE = MINUTE_MS
    HOUR = HOUR_MS
    DAY = DAY_MS


_COARSEST_FIRST = (Level.DAY, Level.HOUR, Level.MINUTE, Level.TEN_SECONDS)
#: The finest bucket level: raw trades are read only inside buckets of this width.
FINEST = Level.TEN_SECONDS


@dataclass(frozen=True, slots=True)
class Piece:
    """``[start_ms, end_ms)`` read from one level; bucket levels have aligned bounds."""

    level: Level
    start_ms: int
    end_ms: int


def _floor(ms: int, width: int) -> int:
    return ms - ms % width


def _ceil(ms: int, width: int) -> int:
    return -_floor(-ms, width)


def _split(
    start: int, end: int, levels: tuple[Level, ...], cuts: Sequence[int], out: list[Piece]
) -> None:
    if start >= end:
        return
    if not levels:
        out.append(Piece(Level.RAW, start, end))
        return
    level, finer = levels[0], levels[1:]
    width = level.value
    lo, hi = _ceil(start, width), _floor(end, width)
    if lo >= hi:
        _split(start, end, finer, cuts, out)
        return
    _split(start, lo, finer, cuts, out)
    inside = cuts[bisect.bisect_right(cuts, lo) : bisect.bisect_left(cuts, hi)]
    split_buckets = sorted({_floor(c, width) for c in inside if c % width})
    pos = lo
    for bucket in split_buckets:
        if pos < bucket:
            out.append(Piece(level, pos, bucket))
        _split(bucket, bucket + width, finer, cuts, out)
        pos = bucket + width
    if pos < hi:
        out.append(Piece(level, pos, hi))
    _split(hi, end, finer, cuts, out)


def plan_pieces(start_ms: int, end_ms: int, cuts: Sequence[int] = ()) -> list[Piece]:
    """Pieces covering ``[start_ms, end_ms)`` exactly, in time order (empty when empty).

    No single bucket of a bucket piece has one of the sorted ``cuts`` strictly inside it, so
    sums up to any cut can be taken from whole buckets plus raw trades.
    """
    if not cuts:
        return _plan_uncut(start_ms, end_ms)
    out: list[Piece] = []
    _split(start_ms, end_ms, _COARSEST_FIRST, cuts, out)
    return out


_FINEST_FIRST = (Level.TEN_SECONDS, Level.MINUTE, Level.HOUR, Level.DAY)


def _plan_uncut(start: int, end: int) -> list[Piece]:
    """:func:`plan_pieces` without cuts, in closed form (GetVwap's hot path).

    The aligned ranges ``[ceil(start), floor(end))`` of the levels are nested (a day is whole
    hours, an hour whole minutes, a minute whole 10-second buckets), so going from fine to
    coarse each non-empty range contains the next; the pieces are the left differences, the
    coarsest range, the right differences.
    """
    if start >= end:
        return []
    lows = [start]
    highs = [end]
    levels = [Level.RAW]
    for level in _FINEST_FIRST:
        width = level.value
        lo = start - start % width
        if lo < start:
            lo += width
        hi = end - end % width
        if lo >= hi:
            break
        lows.append(lo)
        highs.append(hi)
        levels.append(level)
    out: list[Piece] = []
    top = len(levels) - 1
    for i in range(top):
        if lows[i] < lows[i + 1]:
            out.append(Piece(levels[i], lows[i], lows[i + 1]))
    out.append(Piece(levels[top], lows[top], highs[top]))
    for i in range(top - 1, -1, -1):
        if highs[i + 1] < highs[i]:
            out.append(Piece(levels[i], highs[i + 1], highs[i]))
    return out


def merge_pieces(pieces: Iterable[Piece]) -> list[Piece]:
    """Join touching pieces of the same level; the result is sorted by (level, start)."""
    ordered = sorted(pieces, key=lambda p: (p.level.value, p.start_ms))
    merged: list[Piece] = []
    for piece in ordered:
        last = merged[-1] if merged else None
        if last is not None and last.level is piece.level and last.end_ms >= piece.start_ms:
            merged[-1] = Piece(piece.level, last.start_ms, max(last.end_ms, piece.end_ms))
        else:
            merged.append(piece)
    return merged
