"""The provider's clock as the feed shows it, for deciding which windows have settled (pure).

Reconciliation verifies a window once it ended ``SETTLE_DELAY`` ago, and from then on the
window is closed: REST is not asked again and the feed's copies of its trades are dropped. If
the provider's clock runs behind this machine's by more than the settle delay (less the REST
API's own lag), a window would be verified before the provider has even stamped its last
trades, and those trades would be lost for good. So "now" for reconciliation is this
machine's clock less how far behind the feed's trade times are: the median over the most
recent trades of ``received - ts`` (typical delivery latency plus the clock offset), when
positive. The median is robust to a few wrong times (a frame with a corrupt timestamp) and to
delayed or reordered frames, which only make it later (the safe side: a window is verified a
little later). A provider ahead of this machine changes nothing (its trades have settled
sooner). While the feed is quiet the last estimate stays; at start it is seeded with the lags
of the newest stored feed trades (a restarted processor plans its first turn before the feed
delivers anything, with a watermark in the past). A backlog of old trades (more than half the
samples) holds it back by the backlog's age until as many fresh trades replace them: a delay of
verification, never a loss.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterable

#: Recent trades whose delivery lag the estimate takes the median of.
SAMPLES = 512


class ProviderClock:
    """This machine's clock, held back by the feed's lag behind it."""

    def __init__(self, clock_ms: Callable[[], int], *, samples: int = SAMPLES) -> None:
        self._clock_ms = clock_ms
        self._lags: deque[int] = deque(maxlen=samples)

    def seed(self, lags: Iterable[int]) -> None:
        """Start from these ``received - ts`` lags (the newest stored feed trades')."""
        self._lags.extend(lags)

    def observe(self, ts_ms: int, received_ms: int) -> None:
        """A trade stamped ``ts_ms`` by the provider arrived at ``received_ms`` (this clock)."""
        self._lags.append(received_ms - ts_ms)

    def behind_ms(self) -> int:
        """How far the feed's trade times are behind this clock (0 when not behind)."""
        if not self._lags:
            return 0
        return max(0, int(statistics.median_low(self._lags)))

    def now_ms(self) -> int:
        """This clock less the feed's lag behind it."""
        return self._clock_ms() - self.behind_ms()
