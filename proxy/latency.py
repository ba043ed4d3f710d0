"""Observed provider latency: quantiles over recent successes and the adaptive timeouts.

Pure (no clock, no I/O): callers pass latencies in seconds as they measure them.

* the per-attempt timeout is ``clamp(multiplier * p99, floor, ceiling)`` once enough samples
  exist, the ceiling before that;
* the hedge delay is ``max(p95, hedge floor)`` once enough samples exist, none before that.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: How many recent successful latencies the quantiles are computed over.
LATENCY_WINDOW = 512


@dataclass(frozen=True, slots=True)
class LatencyPolicy:
    """How observed latency turns into timeouts and hedge delays (all in seconds)."""

    timeout_floor_s: float
    timeout_ceiling_s: float
    timeout_multiplier: float = 4.0
    hedge_floor_s: float = 0.05
    min_samples: int = 20
    window: int = LATENCY_WINDOW

    def __post_init__(self) -> None:
        if not 0 < self.timeout_floor_s <= self.timeout_ceiling_s:
            raise ValueError("need 0 < timeout_floor_s <= timeout_ceiling_s")
        if self.timeout_multiplier < 1 or self.hedge_floor_s < 0:
            raise ValueError("need timeout_multiplier >= 1 and hedge_floor_s >= 0")
        if self.min_samples < 1 or self.window < self.min_samples:
            raise ValueError("need 1 <= min_samples <= window")


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Quantiles of the recent successful latencies (None before the first sample)."""

    samples: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank ``q`` quantile (0 < q <= 1) of a non-empty ascending list."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[rank - 1]


class LatencyTracker:
    """The last ``policy.window`` successful latencies and what follows from them."""

    def __init__(self, policy: LatencyPolicy) -> None:
        self.policy = policy
        self._recent: deque[float] = deque(maxlen=policy.window)

    def record(self, latency_s: float) -> None:
        """Add the latency of one successful response."""
        if latency_s < 0 or math.isnan(latency_s):
            raise ValueError(f"latency must be >= 0, got {latency_s}")
        self._recent.append(latency_s)

    @property
    def samples(self) -> int:
        """How many latencies are held."""
        return len(self._recent)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the held latencies, None when there are none."""
        if not self._recent:
            return None
        return quantile(sorted(self._recent), q)

    def summary(self) -> LatencySummary:
        """p50, p95 and p99 in one pass."""
        if not self._recent:
            return LatencySummary(0, None, None, None)
        values = sorted(self._recent)
        return LatencySummary(
            len(values), quantile(values, 0.50), quantile(values, 0.95), quantile(values, 0.99)
        )

    def attempt_timeout_s(self) -> float:
        """The timeout of one attempt: ``clamp(multiplier * p99, floor, ceiling)``."""
        policy = self.policy
        p99 = self.quantile(0.99)
        if p99 is None or self.samples < policy.min_samples:
            return policy.timeout_ceiling_s
        return min(
            policy.timeout_ceiling_s, max(policy.timeout_floor_s, policy.timeout_multiplier * p99)
        )

    def hedge_delay_s(self) -> float | None:
        """How long a request may run before it is hedged; None until enough samples."""
        if self.samples < self.policy.min_samples:
            return None
        p95 = self.quantile(0.95)
        assert p95 is not None
        return max(p95, self.policy.hedge_floor_s)
