"""The window planner (pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from processor.reconcile.planner import plan_windows, settled_until, split_aligned

WINDOW = 60_000


@st.composite
def situations(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], int, int, int]:
    window = draw(st.sampled_from([1, 7, 1000, WINDOW]))
    watermark = draw(st.integers(0, 50 * window))
    now = watermark + draw(st.integers(0, 60 * window))
    settle = draw(st.integers(0, 5 * window))
    gaps = draw(
        st.lists(
            st.tuples(st.integers(0, 70 * window), st.integers(1, 10 * window)).map(
                lambda g: (g[0], g[0] + g[1])
            ),
            max_size=4,
        )
    )
    return watermark, gaps, now, settle, window


@given(situations())
def test_plan_covers_watermark_to_settled_end_exactly(
    s: tuple[int, list[tuple[int, int]], int, int, int],
) -> None:
    """Sorted windows are contiguous from the watermark to floor((now-settle)/w)*w, aligned."""
    watermark, gaps, now, settle, window = s
    plan = plan_windows(
        verified_until_ms=watermark, gaps=gaps, now_ms=now, settle_ms=settle, window_ms=window
    )
    end = settled_until(now, settle, window)
    ordered = sorted(plan, key=lambda w: w.start_ms)
    if end <= watermark:
        assert plan == []
        return
    assert ordered[0].start_ms == watermark
    assert ordered[-1].end_ms == end
    for a, b in itertools.pairwise(ordered):
        assert a.end_ms == b.start_ms
    for w in ordered:
        assert w.end_ms % window == 0
        assert w.end_ms <= now - settle
        assert w.start_ms % window == 0 or w.start_ms == watermark


@given(situations())
def test_gap_windows_come_first(s: tuple[int, list[tuple[int, int]], int, int, int]) -> None:
    """Every window overlapping a gap precedes every other; each group is in time order."""
    watermark, gaps, now, settle, window = s
    plan = plan_windows(
        verified_until_ms=watermark, gaps=gaps, now_ms=now, settle_ms=settle, window_ms=window
    )
    flags = [any(g[0] < w.end_ms and w.start_ms < g[1] for g in gaps) for w in plan]
    assert flags == sorted(flags, reverse=True)
    first = [w.start_ms for w, f in zip(plan, flags, strict=True) if f]
    rest = [w.start_ms for w, f in zip(plan, flags, strict=True) if not f]
    assert first == sorted(first)
    assert rest == sorted(rest)


def test_skipped_and_limited_windows_are_left_out() -> None:
    """Windows in flight are skipped and the limit keeps the first of the plan."""
    plan = plan_windows(
        verified_until_ms=0,
        gaps=[(250_000, 260_000)],
        now_ms=600_000,
        settle_ms=30_000,
        window_ms=WINDOW,
        skip_starts={60_000},
        limit=3,
    )
    assert [w.start_ms for w in plan] == [240_000, 0, 120_000]


def test_unaligned_watermark_gets_a_short_first_window() -> None:
    """A watermark inside a window starts a window that ends at the next boundary."""
    windows = list(split_aligned(90_000, 240_000, WINDOW))
    assert [(w.start_ms, w.end_ms) for w in windows] == [
        (90_000, 120_000),
        (120_000, 180_000),
        (180_000, 240_000),
    ]
