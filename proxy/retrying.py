"""Fetch one page until it succeeds: stamina backoff, adaptive timeouts and hedging.

Each attempt is one hedged request (:func:`proxy.hedging.race_with_hedge`): a primary HTTP
request with a timeout adapted to the observed latency, and at most one hedge sent when the
primary runs past the observed p95. A transient failure (:class:`AttemptFailed`: timeout,
5xx, 429, connection error, malformed body) is retried with exponential backoff and jitter
for as long as it takes; a 429 waits at least the provider's Retry-After. Any other error
(404, 400, another 4xx) ends the fetch. Cancelling the caller cancels the HTTP requests in
flight, which closes their connections.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import stamina

from proxy.errors import (
    AttemptFailed,
    AttemptTimedOut,
    MalformedResponse,
    ProviderConnectionError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProxyError,
    UnknownSymbol,
)
from proxy.hedging import HedgeBudget, race_with_hedge
from proxy.latency import LatencyTracker
from proxy.paging import PageRequest
from proxy.provider_client import ProviderClient
from proxy.stats import Outcome, ProxyStats, WindowCounters
from proxy.throttle import Throttle
from tradekit.domain import Trade
from tradekit.logs import event_logger

log = event_logger("proxy.retrying")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff between attempts: ``min(max, initial * 2**n + jitter)`` seconds."""

    initial_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("need 0 < initial_s <= max_s")


def outcome_of(error: BaseException) -> Outcome:
    """The stats outcome of a failed request."""
    if isinstance(error, AttemptTimedOut):
        return Outcome.TIMEOUT
    if isinstance(error, ProviderServerError):
        return Outcome.SERVER_ERROR
    if isinstance(error, MalformedResponse):
        return Outcome.MALFORMED
    if isinstance(error, ProviderRateLimited):
        return Outcome.RATE_LIMITED
    if isinstance(error, ProviderConnectionError):
        return Outcome.CONNECTION_ERROR
    if isinstance(error, UnknownSymbol):
        return Outcome.NOT_FOUND
    if isinstance(error, ProviderRejected):
        return Outcome.REJECTED
    return Outcome.CANCELLED


class PageFetcher:
    """Fetches pages for all windows; holds the shared latency tracker and hedge budget."""

    def __init__(
        self,
        *,
        client: ProviderClient,
        throttle: Throttle,
        latency: LatencyTracker,
        hedge_budget: HedgeBudget,
        backoff: BackoffPolicy,
        stats: ProxyStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._throttle = throttle
        self.latency = latency
        self._budget = hedge_budget
        self._backoff = backoff
        self._stats = stats
        self._clock = clock

    def _backoff_for(self, error: Exception) -> bool | float:
        """stamina's ``on`` hook: retry transient failures, honouring Retry-After."""
        if isinstance(error, ProviderRateLimited) and error.retry_after_s is not None:
            return error.retry_after_s + random.uniform(0, self._backoff.initial_s)
        return isinstance(error, AttemptFailed)

    async def fetch(
        self, symbol: str, request: PageRequest, counters: WindowCounters
    ) -> list[Trade]:
        """The provider's page for ``request``, retried until it succeeds."""
        timeouts_in_a_row = 0
        ceiling_s = self.latency.policy.timeout_ceiling_s
        async for attempt in stamina.retry_context(
            on=self._backoff_for,
            attempts=None,
            timeout=None,
            wait_initial=self._backoff.initial_s,
            wait_max=self._backoff.max_s,
            wait_jitter=self._backoff.initial_s,
        ):
            with attempt:
                # A timeout may mean the provider got slower than recent successes say: each
                # timeout of this page doubles its next attempt's timeout, up to the ceiling.
                timeout_s = min(ceiling_s, self.latency.attempt_timeout_s() * 2**timeouts_in_a_row)
                hedge_delay_s = self.latency.hedge_delay_s()
                if hedge_delay_s is not None and hedge_delay_s >= timeout_s:
                    hedge_delay_s = None
                self._budget.record_primary(self._clock())
                try:
                    result = await race_with_hedge(
                        partial(self._send, symbol, request, counters, timeout_s),
                        hedge_delay_s=hedge_delay_s,
                        may_hedge=partial(self._may_hedge, counters),
                    )
                except AttemptFailed as exc:
                    timeouts_in_a_row = (
                        timeouts_in_a_row + 1 if isinstance(exc, AttemptTimedOut) else 0
                    )
                    counters.retries += 1
                    self._stats.retries += 1
                    raise
                if result.hedge_won:
                    self._stats.hedges_won += 1
                return result.value
        raise AssertionError("unreachable: attempts are unlimited")

    def _may_hedge(self, counters: WindowCounters) -> bool:
        if not self._budget.try_spend(self._clock()):
            return False
        counters.hedges += 1
        self._stats.hedges += 1
        return True

    async def _send(
        self,
        symbol: str,
        request: PageRequest,
        counters: WindowCounters,
        timeout_s: float,
        sent: asyncio.Event,
    ) -> list[Trade]:
        """One HTTP request within ``timeout_s``; records its outcome and latency."""
        async with self._throttle.slot():
            counters.attempts += 1
            self._stats.requests += 1
            sent.set()
            started = self._clock()
            try:
                async with asyncio.timeout(timeout_s):
                    trades = await self._client.fetch_page(symbol, request)
            except TimeoutError:
                error: ProxyError = AttemptTimedOut(timeout_s)
                self._request_failed(symbol, request, counters, error)
                raise error from None
            except ProxyError as exc:
                self._request_failed(symbol, request, counters, exc)
                raise
            except asyncio.CancelledError:
                self._stats.request_ended(Outcome.CANCELLED)
                raise
            self.latency.record(self._clock() - started)
            self._stats.request_ended(Outcome.SUCCEEDED)
            return trades

    def _request_failed(
        self, symbol: str, request: PageRequest, counters: WindowCounters, error: ProxyError
    ) -> None:
        self._stats.request_ended(outcome_of(error))
        if isinstance(error, AttemptFailed):
            log.info(
                "attempt_failed",
                reason=error.reason,
                symbol=symbol,
                start=request.start_ms,
                end=request.end_ms,
                attempt=counters.attempts,
                error=str(error),
            )
