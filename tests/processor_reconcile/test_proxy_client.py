"""The reconciler's FetchTrades client against a real proxy and simulator: a window's pages
may take as long as they need as long as each comes in time."""

from __future__ import annotations

import dataclasses
import time

import pytest

from processor.reconcile.errors import WindowFetchFailed
from processor.reconcile.proxy_client import ProxyClient
from proxy.paging import PAGE_SIZE
from simulator.profiles import get_profile
from simulator.tape import TapeParams
from tests.processor_reconcile.providers import hostile_provider
from tradekit.domain import TimeWindow

#: Every REST answer takes exactly this long (no faults).
PAGE_LATENCY_MS = 40.0
STEADY_REST = dataclasses.replace(
    get_profile("clean").rest, latency_median_ms=PAGE_LATENCY_MS, latency_sigma=0.0
)


async def test_a_window_of_many_pages_finishes_past_the_wait_for_one_page() -> None:
    """Pages that each arrive within page_wait_ms complete the window even when all of them
    together take several times longer (a total deadline failed such a window every time)."""
    page_wait_ms = 250
    async with hostile_provider(
        history_ms=20_000, tape=TapeParams(rate=150.0, cluster_rate=0.2), rest=STEADY_REST
    ) as provider:
        start = provider.clock() - 15_000
        window = TimeWindow(start, start + 10_000)
        truth = provider.truth("BTC", window.start_ms, window.end_ms)
        async with ProxyClient(address=provider.proxy_address, page_wait_ms=page_wait_ms) as c:
            began = time.perf_counter()
            fetched = await c.fetch_window("BTC", window)
            took_ms = (time.perf_counter() - began) * 1000
    assert len(truth) // PAGE_SIZE * PAGE_LATENCY_MS > 2 * page_wait_ms  # the premise
    assert took_ms > page_wait_ms
    assert sorted(fetched, key=lambda t: t.trade_id) == sorted(truth, key=lambda t: t.trade_id)


async def test_a_proxy_that_sends_nothing_fails_the_window_after_the_wait() -> None:
    """A provider slower than every proxy attempt (the proxy retries without end) fails the
    fetch with WindowFetchFailed after page_wait_ms, naming the wait."""
    hanging = dataclasses.replace(STEADY_REST, latency_median_ms=5_000.0)
    async with hostile_provider(history_ms=20_000, rest=hanging) as provider:
        start = provider.clock() - 15_000
        async with ProxyClient(address=provider.proxy_address, page_wait_ms=500) as client:
            with pytest.raises(WindowFetchFailed, match=r"no page from the proxy for 0.5 s"):
                await client.fetch_window("BTC", TimeWindow(start, start + 2_000))
