"""Releases the tape as wall-clock time passes and fans trades out to every connection.

Every `tick_ms` the hub releases all trades with `ts <= now`, appends them to the truth and
offers them to each subscriber (filtered by its tickers). A subscriber whose backlog
exceeds `max_backlog` trades is closed as a slow consumer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from simulator.clock import Clock
from simulator.stats import SimStats
from simulator.tape import TradeSource
from simulator.trade import Trade
from simulator.truth import TruthStore

SLOW_CONSUMER = "slow_consumer"
SHUTDOWN = "shutdown"


class Subscriber:
    """One connection's queue of released trades."""

    def __init__(self, tickers: frozenset[str] | None, max_backlog: int) -> None:
        self.tickers = tickers
        self._max_backlog = max_backlog
        self._pending: deque[list[Trade]] = deque()
        self._backlog = 0
        self._wake = asyncio.Event()
        self.closed_reason: str | None = None

    def offer(self, batch: list[Trade]) -> None:
        """Queue a batch (already filtered for this subscriber)."""
        if self.closed_reason is not None:
            return
        if self._backlog + len(batch) > self._max_backlog:
            self.close(SLOW_CONSUMER)
            return
        self._pending.append(batch)
        self._backlog += len(batch)
        self._wake.set()

    def close(self, reason: str) -> None:
        """Stop the subscription; `take` returns None from now on."""
        if self.closed_reason is None:
            self.closed_reason = reason
        self._pending.clear()
        self._backlog = 0
        self._wake.set()

    async def take(self) -> list[Trade] | None:
        """All queued trades (waits for some), or None once closed."""
        while not self._pending and self.closed_reason is None:
            self._wake.clear()
            await self._wake.wait()
        if self.closed_reason is not None:
            return None
        pending = self._pending
        batch = pending.popleft() if len(pending) == 1 else [t for b in pending for t in b]
        pending.clear()
        self._backlog = 0
        return batch


class Hub:
    """The release clock and fan-out."""

    def __init__(
        self,
        source: TradeSource,
        truth: TruthStore,
        stats: SimStats,
        clock: Clock,
        *,
        tick_ms: int = 10,
        retention_ms: int = 0,
        max_backlog: int = 200_000,
    ) -> None:
        self._source = source
        self._truth = truth
        self._stats = stats
        self._clock = clock
        self._tick_s = tick_ms / 1000
        self._retention_ms = retention_ms
        self._max_backlog = max_backlog
        self._subscribers: set[Subscriber] = set()
        self._last_trim_ms = 0

    def subscribe(self, tickers: frozenset[str] | None) -> Subscriber:
        """A new subscription (None = all tickers)."""
        subscriber = Subscriber(tickers, self._max_backlog)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscription."""
        self._subscribers.discard(subscriber)

    def release(self, now_ms: int | None = None) -> list[Trade]:
        """Release trades up to `now_ms` (default: the clock) into the truth and to everyone."""
        now = self._clock() if now_ms is None else now_ms
        trades = self._source.advance_to(now)
        if trades:
            self._truth.add(trades)
            self._stats.released.update(Counter(t.ticker for t in trades))
            filtered: dict[frozenset[str], list[Trade]] = {}
            for subscriber in list(self._subscribers):
                wanted = subscriber.tickers
                if wanted is None:
                    subscriber.offer(trades)
                    continue
                batch = filtered.get(wanted)
                if batch is None:
                    batch = filtered[wanted] = [t for t in trades if t.ticker in wanted]
                if batch:
                    subscriber.offer(batch)
        if self._retention_ms and now - self._last_trim_ms >= 1000:
            self._last_trim_ms = now
            self._truth.trim_before(now - self._retention_ms)
        return trades

    async def run(self) -> None:
        """Release forever, every tick."""
        while True:
            self.release()
            await asyncio.sleep(self._tick_s)

    def close_all(self, reason: str = SHUTDOWN) -> None:
        """Close every subscription (server shutdown)."""
        for subscriber in list(self._subscribers):
            subscriber.close(reason)
