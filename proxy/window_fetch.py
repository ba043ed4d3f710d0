"""The pages of one window, as they arrive: the paging plan driven by the page fetcher."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from proxy.errors import PagingStuck
from proxy.paging import PagingPlan
from proxy.retrying import PageFetcher
from proxy.stats import FetchProgress, WindowCounters
from tradekit.domain import TimeWindow, Trade
from tradekit.logs import event_logger

log = event_logger("proxy.window_fetch")


@dataclass(frozen=True, slots=True)
class PageFetched:
    """One provider page: its trades not sent before, and the progress after it."""

    trades: tuple[Trade, ...]
    progress: FetchProgress


@dataclass(frozen=True, slots=True)
class WindowFetched:
    """The window is complete; ``progress.trades`` is the number of distinct trades."""

    progress: FetchProgress


WindowEvent = PageFetched | WindowFetched


def _progress(plan: PagingPlan, counters: WindowCounters) -> FetchProgress:
    return FetchProgress(
        pages=plan.pages,
        attempts=counters.attempts,
        retries=counters.retries,
        hedges=counters.hedges,
        cursor_ms=plan.cursor_ms,
        trades=plan.trades,
    )


async def fetch_window(
    fetcher: PageFetcher, symbol: str, window: TimeWindow, counters: WindowCounters
) -> AsyncGenerator[WindowEvent, None]:
    """Yield each page of ``symbol`` over ``window`` as it arrives, then :class:`WindowFetched`.

    ``counters`` collects the HTTP traffic spent on the window, also when it fails.

    Raises :class:`PagingStuck` (after yielding the stuck page's new trades) when a full page
    falls inside one millisecond, and whatever non-transient error the fetcher raises.
    """
    plan = PagingPlan(window)
    while (request := plan.next_request) is not None:
        trades = await fetcher.fetch(symbol, request, counters)
        step = plan.feed(trades)
        yield PageFetched(step.new_trades, _progress(plan, counters))
    if plan.stuck_ms is not None:
        log.warning(
            "paging_stuck",
            symbol=symbol,
            start=window.start_ms,
            end=window.end_ms,
            ms=plan.stuck_ms,
            page_size=plan.page_size,
        )
        raise PagingStuck(symbol, plan.stuck_ms, plan.page_size)
    yield WindowFetched(_progress(plan, counters))
