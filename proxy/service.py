"""The proxy's logic behind the servicer: validate a window, fetch it, count and log it.

    async with ProxyService.from_config(config) as service:
        async for event in service.fetch_window("BTC", window): ...

The service owns the process's one aiohttp session (connection pool), the admission
throttle, the latency tracker and the hedge budget, shared by every window.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from types import TracebackType

import aiohttp

from proxy.config import ProxyConfig
from proxy.errors import InvalidWindowRequest, ProxyError
from proxy.hedging import HedgeBudget
from proxy.latency import LatencyPolicy, LatencyTracker
from proxy.provider_client import ProviderClient
from proxy.retrying import BackoffPolicy, PageFetcher
from proxy.stats import ProxyStats, StatsSnapshot, WindowCounters
from proxy.throttle import Throttle
from proxy.window_fetch import PageFetched, WindowEvent, fetch_window
from tradekit.domain import TimeWindow
from tradekit.logs import event_logger

log = event_logger("proxy.service")

#: The sliding window over which the hedge budget is counted.
HEDGE_BUDGET_WINDOW_S = 10.0


class ProxyService:
    """Fetches windows from the provider; an async context manager with idempotent close."""

    def __init__(
        self,
        *,
        provider_url: str,
        max_window_ms: int,
        max_concurrency: int,
        rate_limit_per_s: float | None,
        latency: LatencyPolicy,
        hedge_budget_ratio: float,
        backoff: BackoffPolicy,
    ) -> None:
        self.provider_url = provider_url
        self.max_window_ms = max_window_ms
        self._max_concurrency = max_concurrency
        self._rate_limit_per_s = rate_limit_per_s
        self._latency_policy = latency
        self._hedge_budget_ratio = hedge_budget_ratio
        self._backoff = backoff
        self._stats = ProxyStats()
        self._latency = LatencyTracker(latency)
        self._session: aiohttp.ClientSession | None = None
        self._fetcher: PageFetcher | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: ProxyConfig) -> ProxyService:
        """A service with the settings of ``config``."""
        return cls(
            provider_url=config.provider_rest_url,
            max_window_ms=config.max_window_ms,
            max_concurrency=config.max_concurrency,
            rate_limit_per_s=config.rate_limit_per_s or None,
            latency=LatencyPolicy(
                timeout_floor_s=config.attempt_timeout_floor_ms / 1000,
                timeout_ceiling_s=config.attempt_timeout_ceiling_ms / 1000,
                hedge_floor_s=config.hedge_floor_ms / 1000,
                min_samples=config.latency_min_samples,
            ),
            hedge_budget_ratio=config.hedge_budget_percent / 100,
            backoff=BackoffPolicy(
                initial_s=config.backoff_initial_ms / 1000, max_s=config.backoff_max_ms / 1000
            ),
        )

    async def open(self) -> None:
        """Open the connection pool. Called by ``async with``."""
        if self._session is not None:
            return
        if self._closed:
            raise RuntimeError("the proxy service is closed")
        connector = aiohttp.TCPConnector(limit=self._max_concurrency * 2, limit_per_host=0)
        # Timeouts are per attempt and adaptive (retrying); the session sets none of its own.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )
        self._fetcher = PageFetcher(
            client=ProviderClient(self._session, self.provider_url),
            throttle=Throttle(
                max_concurrency=self._max_concurrency, rate_per_s=self._rate_limit_per_s
            ),
            latency=self._latency,
            hedge_budget=HedgeBudget(
                ratio=self._hedge_budget_ratio, window_s=HEDGE_BUDGET_WINDOW_S
            ),
            backoff=self._backoff,
            stats=self._stats,
        )
        log.info("provider_client_opened", url=self.provider_url)

    async def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._closed = True
        session, self._session, self._fetcher = self._session, None, None
        if session is not None:
            await session.close()
            log.info("provider_client_closed", url=self.provider_url)

    async def __aenter__(self) -> ProxyService:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def check_window(self, window: TimeWindow) -> None:
        """Raise InvalidWindowRequest when ``window`` is longer than the configured maximum."""
        if window.length_ms > self.max_window_ms:
            raise InvalidWindowRequest(
                f"the window is {window.length_ms} ms long, more than the maximum "
                f"{self.max_window_ms} ms (PROXY_MAX_WINDOW); split it into shorter windows"
            )

    async def fetch_window(
        self, symbol: str, window: TimeWindow
    ) -> AsyncGenerator[WindowEvent, None]:
        """Each page of ``symbol`` over ``window`` as it arrives, then the completion.

        ``symbol`` must already be valid; ``window`` is checked against the maximum length.
        """
        if self._fetcher is None:
            raise RuntimeError("the proxy service is not open")
        self.check_window(window)
        stats = self._stats
        counters = WindowCounters()
        started = time.monotonic()
        pages = trades = 0
        outcome: str | None = None
        stats.windows_in_flight += 1
        try:
            events = fetch_window(self._fetcher, symbol, window, counters)
            async with aclosing(events):
                async for event in events:
                    pages, trades = event.progress.pages, event.progress.trades
                    if isinstance(event, PageFetched):
                        stats.trades_streamed += len(event.trades)
                    yield event
            stats.windows_completed += 1
            outcome = "fetched"
        except ProxyError as exc:
            outcome = f"failed: {exc}"
            raise
        except Exception as exc:
            outcome = f"crashed: {exc!r}"
            raise
        finally:
            stats.windows_in_flight -= 1
            fields = {
                "symbol": symbol,
                "start": window.start_ms,
                "end": window.end_ms,
                "pages": pages,
                "attempts": counters.attempts,
                "retries": counters.retries,
                "hedges": counters.hedges,
                "trades": trades,
                "ms": round((time.monotonic() - started) * 1000),
            }
            if outcome == "fetched":
                log.info("window_fetched", **fields)
            elif outcome is None:  # the caller went away: cancelled, deadline passed, closed
                log.info("window_abandoned", **fields)
            else:
                log.warning("window_failed", error=outcome, **fields)

    def stats(self) -> StatsSnapshot:
        """The counters since start."""
        return self._stats.snapshot(self._latency)
