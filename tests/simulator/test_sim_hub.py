"""Release clock and fan-out, driven with explicit timestamps (no network)."""

from __future__ import annotations

from simulator.hub import SHUTDOWN, SLOW_CONSUMER, Hub
from simulator.stats import SimStats
from simulator.tape import Tape, TapeParams
from simulator.truth import TruthStore

START = 1_700_000_000_000


def make_hub(max_backlog: int = 100_000, retention_ms: int = 0) -> tuple[Hub, TruthStore, SimStats]:
    """A hub over a 3-ticker tape with a frozen clock."""
    tape = Tape(("BTC", "ETH", "SOL"), TapeParams(rate=500.0), 1, START)
    truth = TruthStore(tape.tickers)
    stats = SimStats()
    hub = Hub(tape, truth, stats, lambda: START, max_backlog=max_backlog, retention_ms=retention_ms)
    return hub, truth, stats


async def test_release_feeds_truth_and_filtered_subscribers() -> None:
    """Released trades go to the truth, to all-ticker and to narrowed subscribers."""
    hub, truth, stats = make_hub()
    everything = hub.subscribe(None)
    eth = hub.subscribe(frozenset({"ETH"}))
    released = hub.release(START + 1_000)
    assert released
    assert sum(truth.count(t) for t in truth.tickers) == len(released)
    assert sum(stats.released.values()) == len(released)
    assert await everything.take() == released
    assert await eth.take() == [t for t in released if t.ticker == "ETH"]
    more = hub.release(START + 2_000)
    assert all(t.ts > START + 1_000 for t in more)
    assert await everything.take() == more


async def test_slow_consumer_is_closed() -> None:
    """A subscriber whose backlog exceeds max_backlog is closed as a slow consumer."""
    hub, _, _ = make_hub(max_backlog=500)
    subscriber = hub.subscribe(None)
    hub.release(START + 200)
    assert subscriber.closed_reason is None
    hub.release(START + 5_000)
    assert subscriber.closed_reason == SLOW_CONSUMER
    assert await subscriber.take() is None


async def test_close_all_ends_subscriptions() -> None:
    """close_all (shutdown) makes every pending take return None."""
    hub, _, _ = make_hub()
    subscribers = [hub.subscribe(None), hub.subscribe(frozenset({"BTC"}))]
    hub.close_all()
    for subscriber in subscribers:
        assert subscriber.closed_reason == SHUTDOWN
        assert await subscriber.take() is None


def test_retention_trims_old_truth() -> None:
    """With retention, old trades leave the truth while recent ones stay."""
    hub, truth, stats = make_hub(retention_ms=1_000)
    hub.release(START + 5_000)
    trades = truth.trades("BTC")
    assert 0 < len(trades) < stats.released["BTC"]
    assert trades[0].ts <= START + 4_000
    assert trades[-1].ts > START + 4_900
