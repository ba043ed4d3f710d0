"""Duplicate memory, gap bookkeeping and reconnect backoff (pure, no servers)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.ingest.backoff import Backoff
from processor.ingest.dedup import RecentIds
from processor.ingest.feed import stream_url
from processor.ingest.gaps import GapTracker
from processor.ingest.records import Gap


def test_dedup_drops_repeats_per_symbol() -> None:
    """The same id is new once per symbol; out-of-order ids are accepted."""
    ids = RecentIds(10)
    assert [ids.add("BTC", i) for i in (5, 3, 5, 4, 3)] == [True, True, False, True, False]
    assert ids.add("ETH", 5)
    assert ("BTC", 4) in ids
    assert ("ETH", 4) not in ids


def test_dedup_memory_is_bounded() -> None:
    """Only the newest `capacity` ids per symbol are remembered."""
    ids = RecentIds(3)
    for i in range(100):
        ids.add("BTC", i)
    assert ids.size("BTC") == 3
    assert ("BTC", 99) in ids
    assert ("BTC", 96) not in ids
    assert ids.add("BTC", 0)


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=300), st.integers(1, 20))
def test_dedup_never_reports_a_recent_duplicate_as_new(stream: list[int], capacity: int) -> None:
    """An id is new when it is not among the last `capacity` distinct ids accepted."""
    ids = RecentIds(capacity)
    accepted: list[int] = []
    for trade_id in stream:
        expected = trade_id not in accepted[-capacity:]
        assert ids.add("S", trade_id) == expected
        if expected:
            accepted.append(trade_id)
    assert ids.size("S") == min(capacity, len(accepted))


def test_gap_runs_from_last_valid_frame_to_first_valid_after() -> None:
    """Disconnect then reconnect: the gap spans the silence, minus the margin."""
    gaps = GapTracker(margin_ms=100)
    assert gaps.valid_frame(1_000) is None
    gaps.interrupted(1_500, "disconnected")
    gaps.interrupted(1_700, "connect failed")
    assert gaps.open
    assert gaps.valid_frame(2_000) == Gap(900, 2_000, "disconnected; connect failed")
    assert not gaps.open
    assert gaps.valid_frame(2_001) is None


def test_gap_before_any_frame_starts_at_interruption() -> None:
    """Without a previous valid frame, the gap starts when the feed was interrupted."""
    gaps = GapTracker()
    gaps.interrupted(500, "stale")
    assert gaps.valid_frame(500) == Gap(500, 501, "stale")


def test_restart_gap_starts_at_newest_stored_trade() -> None:
    """A resumed run opens a gap at the given start, closed by the first valid frame."""
    gaps = GapTracker()
    gaps.resume_from(100, "restart")
    gaps.interrupted(300, "disconnected")
    assert gaps.valid_frame(400) == Gap(100, 400, "restart; disconnected")


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """Delays lie in [d/2, d] for d = initial * 2**n capped, and reset starts over."""
    backoff = Backoff(initial_s=0.1, maximum_s=1.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    for n, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_backoff_rejects_nonsense() -> None:
    """initial must be positive and at most maximum."""
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial_s=2, maximum_s=1, rng=random.Random())


def test_stream_url_selects_symbols() -> None:
    """The configured symbols are requested unless the URL already selects tickers."""
    assert (
        stream_url("ws://h:1/stream", frozenset({"ETH", "BTC"}))
        == "ws://h:1/stream?tickers=BTC,ETH"
    )
    assert (
        stream_url("ws://h:1/stream?tickers=SOL", frozenset({"BTC"}))
        == "ws://h:1/stream?tickers=SOL"
    )
