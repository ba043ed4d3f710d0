"""Which continuous-aggregate refreshes a changed range gets (TimescaleDB mode; pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processor.reconcile.scheduler import AGGREGATES, refresh_calls

DAY_MS = 86_400_000
times = st.integers(min_value=0, max_value=40 * DAY_MS)


@given(start=times, length=st.integers(min_value=1, max_value=3 * DAY_MS), now=times)
def test_each_level_refreshes_the_changed_buckets_its_policy_reaches(
    start: int, length: int, now: int
) -> None:
    """Per level, finest first: the refresh covers exactly the whole buckets that overlap the
    change and end by ``now - end_offset`` (where the level's policy stops); none when there
    are none (a still-filling bucket is never materialised)."""
    end = start + length
    calls = {view: (lo, hi) for view, lo, hi in refresh_calls(start, end, now)}
    assert list(calls) == [v for v, *_ in AGGREGATES if v in calls]
    for view, width, end_offset in AGGREGATES:
        reached = [
            bucket
            for bucket in range(start - start % width, end, width)
            if bucket + width <= now - end_offset
        ]
        expected = (reached[0], reached[-1] + width) if reached else None
        assert calls.get(view) == expected, view
