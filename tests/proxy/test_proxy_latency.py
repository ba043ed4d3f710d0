"""Latency quantiles, adaptive timeouts and hedge delays (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.latency import LatencyPolicy, LatencyTracker, quantile

POLICY = LatencyPolicy(
    timeout_floor_s=0.5, timeout_ceiling_s=10.0, hedge_floor_s=0.05, min_samples=5
)


def test_nearest_rank_quantiles() -> None:
    """p50 of 1..100 is 50, p99 is 99, p100 is 100."""
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0)) == (50, 99, 100)


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=200))
def test_quantiles_are_ordered_and_observed(values: list[float]) -> None:
    """p50 <= p95 <= p99, each one of the recorded values."""
    tracker = LatencyTracker(LatencyPolicy(timeout_floor_s=0.1, timeout_ceiling_s=1.0))
    for v in values:
        tracker.record(v)
    summary = tracker.summary()
    assert None not in (summary.p50_s, summary.p95_s, summary.p99_s)
    assert summary.p50_s is not None
    assert summary.p95_s is not None
    assert summary.p99_s is not None
    assert summary.p50_s <= summary.p95_s <= summary.p99_s
    assert {summary.p50_s, summary.p95_s, summary.p99_s} <= set(values)


def test_timeout_is_the_ceiling_before_enough_samples() -> None:
    """With fewer than min_samples latencies the attempt timeout is the ceiling, and no hedging."""
    tracker = LatencyTracker(POLICY)
    for _ in range(4):
        tracker.record(0.01)
    assert tracker.attempt_timeout_s() == 10.0
    assert tracker.hedge_delay_s() is None


def test_timeout_is_four_times_p99_clamped() -> None:
    """4 x p99 between the floor and the ceiling; clamped to each end outside it."""
    tracker = LatencyTracker(POLICY)
    for _ in range(20):
        tracker.record(1.0)
    assert tracker.attempt_timeout_s() == 4.0
    fast = LatencyTracker(POLICY)
    for _ in range(20):
        fast.record(0.01)
    assert fast.attempt_timeout_s() == 0.5
    slow = LatencyTracker(POLICY)
    for _ in range(20):
        slow.record(5.0)
    assert slow.attempt_timeout_s() == 10.0


def test_hedge_delay_is_p95_with_a_floor() -> None:
    """The hedge delay is the observed p95, never below the hedge floor."""
    tracker = LatencyTracker(POLICY)
    for v in [0.1] * 19 + [2.0]:
        tracker.record(v)
    assert tracker.hedge_delay_s() == 0.1
    fast = LatencyTracker(POLICY)
    for _ in range(20):
        fast.record(0.001)
    assert fast.hedge_delay_s() == 0.05


def test_only_recent_latencies_count() -> None:
    """Old samples fall out of the window, so the timeout follows the provider as it changes."""
    tracker = LatencyTracker(
        LatencyPolicy(timeout_floor_s=0.1, timeout_ceiling_s=100.0, min_samples=5, window=10)
    )
    for _ in range(10):
        tracker.record(5.0)
    for _ in range(10):
        tracker.record(0.2)
    assert tracker.attempt_timeout_s() == pytest.approx(0.8)


def test_negative_latency_is_refused() -> None:
    """A negative latency is a bug in the caller."""
    with pytest.raises(ValueError, match=">= 0"):
        LatencyTracker(POLICY).record(-1.0)
