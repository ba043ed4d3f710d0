"""What the end-to-end tests share to run the provider simulator and the proxy in process."""

from __future__ import annotations

from simulator.clock import wall_clock_ms

#: Proxy settings for tests: short timeouts and backoffs so faults cost milliseconds.
FAST_PROXY_ENV = {
    "PROXY_PORT": "0",
    "PROXY_ATTEMPT_TIMEOUT_FLOOR": "150ms",
    "PROXY_ATTEMPT_TIMEOUT_CEILING": "600ms",
    "PROXY_LATENCY_MIN_SAMPLES": "5",
    "PROXY_HEDGE_FLOOR": "10ms",
    "PROXY_BACKOFF_INITIAL": "1ms",
    "PROXY_BACKOFF_MAX": "20ms",
    "PROXY_RATE_LIMIT": "0",
    "PROXY_GRACE": "0s",
}


class SkipClock:
    """The wall clock, plus however far a test has skipped ahead (the simulator's clock can
    jump so that seconds of trade history exist as soon as a test starts)."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.ahead_ms
