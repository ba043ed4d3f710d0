"""Rolling VWAP series (pure): which end times, which pieces to read, and the exact sums.

A series reads every piece it needs in one go (``series_pieces``), gets back *atoms* (a raw
trade or a whole bucket, keyed by its start time, each lying entirely between two consecutive
window bounds), and slides over them with prefix sums (``series_sums``): exact Decimal sums, one
pass, whatever the number of points.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from tradekit.timetext import iso_ms
from vwap.errors import InvalidRequest
from vwap.points import Sums
from vwap.ranges import FINEST, Level, Piece, merge_pieces, plan_pieces


@dataclass(frozen=True, slots=True)
class Atom:
    """Totals of one raw trade or one whole bucket, keyed by its time (trade ts or bucket
    start), with the level it was read from."""

    key_ms: int
    sums: Sums
    level: Level = Level.RAW


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    """What to read for a series.

    ``pieces`` cover the union of the windows. A finest bucket (10 s) cut by window bounds is
    read as its bucket *and* its raw trades before its last cut (``split_buckets``: bucket
    start → last cut), so a series with unaligned end times reads under 10 s of raw trades per
    point instead of every raw trade.
    """

    pieces: list[Piece]
    split_buckets: dict[int, int]


def series_end_times(start_ms: int, end_ms: int, step_ms: int, max_points: int) -> range:
    """End times ``start, start+step, ... <= end``; InvalidRequest when there are too many."""
    if step_ms <= 0:
        raise InvalidRequest(f"step must be positive, got {step_ms} ms")
    if end_ms < start_ms:
        raise InvalidRequest(
            f"end_time must not be before start_time (got start_time {iso_ms(start_ms)}, "
            f"end_time {iso_ms(end_ms)})"
        )
    count = (end_ms - start_ms) // step_ms + 1
    if count > max_points:
        raise InvalidRequest(
            f"the series would have {count} points, more than the maximum {max_points}: "
            "use a larger step or a shorter range"
        )
    return range(start_ms, end_ms + 1, step_ms)


def series_plan(ends: Sequence[int], window_ms: int) -> SeriesPlan:
    """The plan covering every window ``[E - window, E)`` of ``ends`` (sorted): the union of
    the windows in the coarsest buckets no window bound cuts, split buckets, raw edges."""
    cuts = sorted({e for e in ends} | {e - window_ms for e in ends})
    covered: list[tuple[int, int]] = []
    for end in ends:
        start = end - window_ms
        if covered and start <= covered[-1][1]:
            covered[-1] = (covered[-1][0], max(covered[-1][1], end))
        else:
            covered.append((start, end))
    pieces: list[Piece] = []
    splits: dict[int, int] = {}
    width = FINEST.value
    for start, end in covered:
        for piece in plan_pieces(start, end, cuts):
            whole_bucket = piece.start_ms % width == 0 and piece.end_ms == piece.start_ms + width
            if piece.level is Level.RAW and whole_bucket:
                last_cut = cuts[bisect.bisect_left(cuts, piece.end_ms) - 1]
                splits[piece.start_ms] = last_cut
                pieces.append(Piece(FINEST, piece.start_ms, piece.end_ms))
                pieces.append(Piece(Level.RAW, piece.start_ms, last_cut))
            else:
                pieces.append(piece)
    return SeriesPlan(merge_pieces(pieces), splits)


def series_sums(
    ends: Sequence[int], window_ms: int, plan: SeriesPlan, atoms: Sequence[Atom]
) -> list[Sums]:
    """Sums of each window ``[E - window, E)`` from the atoms read for ``plan``."""
    flat: list[tuple[int, Sums]] = []
    split_rest: dict[int, Sums] = {}
    for atom in atoms:
        if atom.level is FINEST and atom.key_ms in plan.split_buckets:
            split_rest[atom.key_ms] = split_rest.get(atom.key_ms, Sums()) + atom.sums
        else:
            flat.append((atom.key_ms, atom.sums))
    flat.sort(key=lambda item: item[0])
    keys = [k for k, _ in flat]
    for bucket, total in split_rest.items():
        last_cut = plan.split_buckets[bucket]
        lo, hi = bisect.bisect_left(keys, bucket), bisect.bisect_left(keys, last_cut)
        before = Sums()
        for _, sums in flat[lo:hi]:
            before = before + sums
        flat.append((last_cut, total - before))
    flat.sort(key=lambda item: item[0])
    keys = [k for k, _ in flat]
    prefix = [Sums()]
    for _, sums in flat:
        prefix.append(prefix[-1] + sums)

    def below(t: int) -> Sums:
        return prefix[bisect.bisect_left(keys, t)]

    return [below(e) - below(e - window_ms) for e in ends]
