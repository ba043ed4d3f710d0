"""Counters of what the simulator actually did, served at `GET /stats`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StreamStats:
    """WebSocket side: connections, frames and injected faults."""

    connections_total: int = 0
    connections_open: int = 0
    frames_sent: int = 0
    trades_offered: int = 0
    slow_consumer_disconnects: int = 0
    faults: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class RestStats:
    """REST `/trades` side: requests by outcome, in flight, cancelled by the client."""

    requests_total: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0

    def enter(self) -> None:
        """A request started being handled."""
        self.requests_total += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        """A request finished (answered, failed or cancelled)."""
        self.in_flight -= 1


@dataclass(slots=True)
class SimStats:
    """All counters."""

    stream: StreamStats = field(default_factory=StreamStats)
    rest: RestStats = field(default_factory=RestStats)
    released: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view."""
        stream, rest = self.stream, self.rest
        return {
            "tape": {"released": dict(self.released), "total": sum(self.released.values())},
            "ws": {
                "connections_total": stream.connections_total,
                "connections_open": stream.connections_open,
                "frames_sent": stream.frames_sent,
                "trades_offered": stream.trades_offered,
                "slow_consumer_disconnects": stream.slow_consumer_disconnects,
                "faults": dict(sorted(stream.faults.items())),
            },
            "rest": {
                "requests_total": rest.requests_total,
                "by_outcome": dict(sorted(rest.by_outcome.items())),
                "by_status": {str(k): v for k, v in sorted(rest.by_status.items())},
                "in_flight": rest.in_flight,
                "max_in_flight": rest.max_in_flight,
                "cancelled": rest.cancelled,
            },
        }
