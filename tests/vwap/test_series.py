"""The pure series core: end times, the pieces to read, and exact sliding sums."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.domain import Trade
from vwap.errors import InvalidRequest
from vwap.points import Sums
from vwap.ranges import HOUR_MS, MINUTE_MS, TEN_SECONDS_MS, Level, Piece
from vwap.series import Atom, series_end_times, series_plan, series_sums

_T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000


def _atoms_like_storage(trades: list[Trade], pieces: list[Piece]) -> list[Atom]:
    # Atoms with level, as storage returns them.
    """What storage returns: raw trades for raw pieces, bucket totals for bucket pieces."""
    atoms: list[Atom] = []
    for piece in pieces:
        inside = [t for t in trades if piece.start_ms <= t.ts_ms < piece.end_ms]
        if piece.level is Level.RAW:
            atoms += [Atom(t.ts_ms, Sums.of(t), Level.RAW) for t in inside]
            continue
        buckets: dict[int, Sums] = defaultdict(Sums)
        for t in inside:
            key = t.ts_ms - t.ts_ms % piece.level.value
            buckets[key] = buckets[key] + Sums.of(t)
        atoms += [Atom(k, s, piece.level) for k, s in buckets.items()]
    return atoms


def _brute(trades: list[Trade], start: int, end: int) -> Sums:
    total = Sums()
    for t in trades:
        if start <= t.ts_ms < end:
            total = total + Sums.of(t)
    return total


_prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99999"), places=3)


@st.composite
def _trades(draw: st.DrawFn) -> list[Trade]:
    offsets = draw(st.lists(st.integers(0, 3 * HOUR_MS), max_size=60))
    return [
        Trade("BTC", i, _T0 + off, draw(_prices), draw(_prices)) for i, off in enumerate(offsets)
    ]


@settings(max_examples=150, deadline=None)
@given(
    _trades(),
    st.integers(0, 2 * HOUR_MS),
    st.integers(1, 40),
    st.sampled_from([1, 999, MINUTE_MS, 7 * MINUTE_MS + 13, HOUR_MS]),
    st.sampled_from([1, 1500, MINUTE_MS, 5 * MINUTE_MS, HOUR_MS + 1, 2 * HOUR_MS]),
)
def test_series_sums_equal_brute_force(
    trades: list[Trade], start_off: int, points: int, step: int, window: int
) -> None:
    """Every point's notional, volume and count equal a brute-force sum over its window."""
    start = _T0 + start_off
    ends = series_end_times(start, start + (points - 1) * step, step, 10_000)
    plan = series_plan(ends, window)
    got = series_sums(ends, window, plan, _atoms_like_storage(trades, plan.pieces))
    assert got == [_brute(trades, e - window, e) for e in ends]


@st.composite
def _dense_trades(draw: st.DrawFn) -> list[Trade]:
    offsets = draw(st.lists(st.integers(0, 3 * MINUTE_MS), min_size=20, max_size=80))
    return [
        Trade("BTC", i, _T0 + off, draw(_prices), draw(_prices)) for i, off in enumerate(offsets)
    ]


@settings(max_examples=150, deadline=None)
@given(
    _dense_trades(),
    st.integers(0, 2 * MINUTE_MS),
    st.integers(1, 40),
    st.sampled_from([1, 999, 1500, TEN_SECONDS_MS + 7, MINUTE_MS]),
    st.sampled_from([1, 999, TEN_SECONDS_MS, 25_001, MINUTE_MS + 3]),
)
def test_series_sums_over_split_buckets_equal_brute_force(
    trades: list[Trade], start_off: int, points: int, step: int, window: int
) -> None:
    """Dense trades and unaligned bounds: 10-second buckets cut by window bounds (read as the
    bucket and the raw trades before its last cut) still give exact sums."""
    start = _T0 + start_off
    ends = series_end_times(start, start + (points - 1) * step, step, 10_000)
    plan = series_plan(ends, window)
    got = series_sums(ends, window, plan, _atoms_like_storage(trades, plan.pieces))
    assert got == [_brute(trades, e - window, e) for e in ends]


def test_end_times_include_the_end_when_on_the_grid() -> None:
    """start, start+step, ... up to and including end."""
    assert list(series_end_times(0, 10, 5, 100)) == [0, 5, 10]
    assert list(series_end_times(0, 9, 5, 100)) == [0, 5]


def test_too_many_points_is_rejected_with_advice() -> None:
    """A series beyond the maximum is an InvalidRequest that says what to change."""
    with pytest.raises(InvalidRequest, match="larger step"):
        series_end_times(0, 10_000, 1, 10_000)


def test_end_before_start_and_bad_step_are_rejected() -> None:
    """end before start and a non-positive step are InvalidRequest."""
    with pytest.raises(InvalidRequest, match="end_time"):
        series_end_times(10, 5, 1, 100)
    with pytest.raises(InvalidRequest, match="step"):
        series_end_times(0, 5, 0, 100)


def test_series_sums_keep_every_digit_of_large_and_fine_notionals() -> None:
    """A huge notional early in the series and a finely divided one later: a window holding
    only the later trade gets its exact sums, not the difference of two rounded running
    totals (the default context's 28 digits would give 1.2345679)."""
    big = Trade("BTC", 1, _T0, Decimal("1e10"), Decimal("1e10"))
    fine = Trade("BTC", 2, _T0 + 70_000, Decimal("1.2345679023456789"), Decimal("1"))
    ends = series_end_times(_T0 + MINUTE_MS, _T0 + 2 * MINUTE_MS, MINUTE_MS, 10)
    plan = series_plan(ends, MINUTE_MS)
    got = series_sums(ends, MINUTE_MS, plan, _atoms_like_storage([big, fine], plan.pieces))
    assert [(s.notional, s.volume, s.count) for s in got] == [
        (Decimal("1e20"), Decimal("1e10"), 1),
        (Decimal("1.2345679023456789"), Decimal("1"), 1),
    ]
