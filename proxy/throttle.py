"""Admission towards the provider: at most N requests in flight and at most R per second.

:class:`TokenBucket` is the pure rate arithmetic (the caller passes the time);
:class:`Throttle` is the asyncio shell every HTTP request goes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TokenBucket:
    """A token bucket that hands out reservations: ``reserve`` says how long to wait.

    Tokens accrue at ``rate_per_s`` up to ``burst``. A reservation always succeeds and may
    drive the balance negative; the returned delay is when its token exists, so concurrent
    callers are spaced ``1 / rate_per_s`` apart in arrival order.
    """

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("need rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._updated: float | None = None

    def reserve(self, now: float) -> float:
        """Take one token at time ``now`` (seconds); return the wait before using it."""
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        self._updated = now if self._updated is None else max(now, self._updated)
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate_per_s


class Throttle:
    """Bounded concurrency plus an optional request rate, shared by all requests."""

    def __init__(self, *, max_concurrency: int, rate_per_s: float | None) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._slots = asyncio.Semaphore(max_concurrency)
        self._bucket = TokenBucket(rate_per_s, burst=max(1.0, rate_per_s)) if rate_per_s else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one concurrency slot, entered no sooner than the rate allows."""
        async with self._slots:
            if self._bucket is not None:
                delay = self._bucket.reserve(time.monotonic())
                if delay > 0:
                    await asyncio.sleep(delay)
            yield
