"""Counters: the proxy's since start (``GetStats``) and one window's (``FetchProgress``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from proxy.latency import LatencyTracker


class Outcome(enum.Enum):
    """How one HTTP request to the provider ended."""

    SUCCEEDED = "succeeded"
    TIMEOUT = "timeout"
    SERVER_ERROR = "5xx"
    MALFORMED = "malformed"
    RATE_LIMITED = "429"
    CONNECTION_ERROR = "connection"
    NOT_FOUND = "404"
    REJECTED = "4xx"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class WindowCounters:
    """HTTP traffic spent on one window so far."""

    attempts: int = 0
    retries: int = 0
    hedges: int = 0


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """How the fetch of one window is going, after a page."""

    pages: int
    attempts: int
    retries: int
    hedges: int
    cursor_ms: int
    trades: int


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """The proxy's counters at one moment (latencies in seconds, None before any success)."""

    requests: int
    outcomes: dict[Outcome, int]
    retries: int
    hedges: int
    hedges_won: int
    windows_completed: int
    windows_in_flight: int
    trades_streamed: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    attempt_timeout_s: float

    def count(self, outcome: Outcome) -> int:
        """Requests that ended with ``outcome``."""
        return self.outcomes.get(outcome, 0)


@dataclass(slots=True)
class ProxyStats:
    """Counters since start; single event loop, so plain integers suffice."""

    requests: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    retries: int = 0
    hedges: int = 0
    hedges_won: int = 0
    windows_completed: int = 0
    windows_in_flight: int = 0
    trades_streamed: int = 0

    def request_ended(self, outcome: Outcome) -> None:
        """Count one finished HTTP request."""
        self.outcomes[outcome] += 1

    def snapshot(self, latency: LatencyTracker) -> StatsSnapshot:
        """A frozen copy, with the latency quantiles and the current attempt timeout."""
        summary = latency.summary()
        return StatsSnapshot(
            requests=self.requests,
            outcomes=dict(self.outcomes),
            retries=self.retries,
            hedges=self.hedges,
            hedges_won=self.hedges_won,
            windows_completed=self.windows_completed,
            windows_in_flight=self.windows_in_flight,
            trades_streamed=self.trades_streamed,
            latency_p50_s=summary.p50_s,
            latency_p95_s=summary.p95_s,
            latency_p99_s=summary.p99_s,
            attempt_timeout_s=latency.attempt_timeout_s(),
        )
