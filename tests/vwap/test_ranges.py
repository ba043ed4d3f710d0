"""Planning a window as raw edges plus whole 10-second, minute, hour and day buckets."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from vwap.ranges import (
    _COARSEST_FIRST,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    TEN_SECONDS_MS,
    Level,
    Piece,
    _split,
    merge_pieces,
    plan_pieces,
)

_T0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
_times = st.integers(min_value=_T0 - 3 * DAY_MS, max_value=_T0 + 3 * DAY_MS)


@given(_times, st.integers(min_value=1, max_value=4 * DAY_MS))
def test_pieces_partition_the_range(start: int, length: int) -> None:
    """The pieces are contiguous, in order, and cover [start, end) with no overlap or hole."""
    pieces = plan_pieces(start, start + length)
    assert pieces[0].start_ms == start
    assert pieces[-1].end_ms == start + length
    for left, right in itertools.pairwise(pieces):
        assert left.end_ms == right.start_ms
    assert all(p.start_ms < p.end_ms for p in pieces)


@given(_times, st.integers(min_value=1, max_value=4 * DAY_MS))
def test_bucket_pieces_are_aligned_and_coarsest(start: int, length: int) -> None:
    """Bucket pieces are aligned to their width; no finer piece could have used a coarser one."""
    pieces = plan_pieces(start, start + length)
    for piece in pieces:
        if piece.level is not Level.RAW:
            assert piece.start_ms % piece.level.value == 0
            assert piece.end_ms % piece.level.value == 0
    for piece in pieces:
        coarser = [lv for lv in Level if lv.value > piece.level.value]
        for level in coarser:
            first = -(-piece.start_ms // level.value) * level.value
            assert first + level.value > piece.end_ms, (piece, level)
    raw = [p for p in pieces if p.level is Level.RAW]
    assert len(raw) <= 2
    assert all(p.end_ms - p.start_ms < TEN_SECONDS_MS for p in raw) or pieces == raw


def test_edges_inside_one_10s_bucket_are_one_raw_piece() -> None:
    """A range inside one 10-second bucket is read from raw trades only."""
    assert plan_pieces(_T0 + 5, _T0 + 9_900) == [Piece(Level.RAW, _T0 + 5, _T0 + 9_900)]


def test_minute_range_uses_10s_buckets_and_raw_edges() -> None:
    """A minute from 00:00:04.5 reads 10-second buckets and two raw edges under 10 s."""
    start = _T0 + 4_500
    assert plan_pieces(start, start + MINUTE_MS) == [
        Piece(Level.RAW, start, _T0 + TEN_SECONDS_MS),
        Piece(Level.TEN_SECONDS, _T0 + TEN_SECONDS_MS, _T0 + MINUTE_MS),
        Piece(Level.RAW, _T0 + MINUTE_MS, start + MINUTE_MS),
    ]


def test_day_range_uses_every_level() -> None:
    """A range from 23:59:59.5 to two days later uses every level."""
    start = _T0 + DAY_MS - 500
    end = start + 2 * DAY_MS + HOUR_MS + MINUTE_MS + TEN_SECONDS_MS + 1000
    day = _T0 + DAY_MS
    minute = day + 2 * DAY_MS + HOUR_MS
    assert plan_pieces(start, end) == [
        Piece(Level.RAW, start, day),
        Piece(Level.DAY, day, day + 2 * DAY_MS),
        Piece(Level.HOUR, day + 2 * DAY_MS, minute),
        Piece(Level.MINUTE, minute, minute + MINUTE_MS),
        Piece(Level.TEN_SECONDS, minute + MINUTE_MS, minute + MINUTE_MS + TEN_SECONDS_MS),
        Piece(Level.RAW, minute + MINUTE_MS + TEN_SECONDS_MS, end),
    ]


def test_merge_joins_touching_pieces_of_one_level() -> None:
    """Touching pieces of the same level merge; different levels stay apart."""
    merged = merge_pieces(
        [
            Piece(Level.MINUTE, 0, MINUTE_MS),
            Piece(Level.RAW, MINUTE_MS, MINUTE_MS + 5),
            Piece(Level.MINUTE, MINUTE_MS, 2 * MINUTE_MS),
        ]
    )
    assert merged == [
        Piece(Level.RAW, MINUTE_MS, MINUTE_MS + 5),
        Piece(Level.MINUTE, 0, 2 * MINUTE_MS),
    ]


@given(
    _times,
    st.integers(min_value=1, max_value=3 * DAY_MS),
    st.lists(st.integers(min_value=0, max_value=3 * DAY_MS), max_size=12),
)
def test_cuts_never_fall_strictly_inside_a_bucket(
    start: int, length: int, offsets: list[int]
) -> None:
    """With cuts, pieces still partition the range and no bucket read whole straddles a cut."""
    cuts = sorted({start + off for off in offsets})
    pieces = plan_pieces(start, start + length, cuts)
    assert pieces[0].start_ms == start
    assert pieces[-1].end_ms == start + length
    for left, right in itertools.pairwise(pieces):
        assert left.end_ms == right.start_ms
    for piece in pieces:
        if piece.level is not Level.RAW:
            assert all(
                c % piece.level.value == 0 for c in cuts if piece.start_ms < c < piece.end_ms
            )


@given(_times, st.integers(min_value=0, max_value=40 * DAY_MS))
def test_the_closed_form_plan_equals_the_recursive_split(start: int, length: int) -> None:
    """Without cuts, plan_pieces (closed form) gives exactly the pieces of the general split."""
    general: list[Piece] = []
    _split(start, start + length, _COARSEST_FIRST, (), general)
    assert plan_pieces(start, start + length) == general


@given(
    st.sampled_from([TEN_SECONDS_MS, MINUTE_MS, HOUR_MS, DAY_MS]),
    st.integers(-3, 3),
    st.integers(0, 3),
)
def test_the_closed_form_plan_at_bucket_edges(width: int, shift: int, buckets: int) -> None:
    """Windows starting and ending at or next to bucket edges plan like the general split."""
    start = _T0 + width + shift
    end = start + buckets * width - shift
    general: list[Piece] = []
    _split(start, end, _COARSEST_FIRST, (), general)
    assert plan_pieces(start, end) == general
