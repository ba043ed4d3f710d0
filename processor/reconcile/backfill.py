"""Reconcile a historic range on demand, one aligned window after another, with progress.

The range must have settled (end at most now minus the settle delay). Windows below the
watermark are verified and recorded in the ledger; ``verified_until`` moves only when a window
is contiguous with it. A window whose fetch fails transiently is tried
``config.backfill_attempts`` times, then the backfill stops with :class:`WindowFetchFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from processor.db import Pool
from processor.reconcile import storage
from processor.reconcile.apply import verify_window
from processor.reconcile.config import ReconcileConfig
from processor.reconcile.errors import (
    RangeBeforeEpoch,
    RangeNotSettled,
    RangeTooLarge,
    WindowFetchFailed,
)
from processor.reconcile.planner import split_aligned
from processor.reconcile.proxy_client import ProxyClient
from processor.stats import ProcessorCounters
from tradekit.domain import TimeWindow, Trade
from tradekit.logs import event_logger

log = event_logger("processor.reconcile.backfill")

_RETRY_PAUSE_S = 0.5


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """Progress after one verified window."""

    windows_total: int
    windows_done: int
    window: TimeWindow
    trade_count: int
    change_count: int

    @property
    def complete(self) -> bool:
        """True for the last window."""
        return self.windows_done == self.windows_total


async def _fetch(
    client: ProxyClient, symbol: str, window: TimeWindow, attempts: int
) -> list[Trade]:
    for attempt in range(1, attempts + 1):
        try:
            return await client.fetch_window(symbol, window)
        except WindowFetchFailed as exc:
            log.warning(
                "backfill_fetch_failed",
                symbol=symbol,
                start_ms=window.start_ms,
                attempt=attempt,
                error=str(exc),
            )
            if attempt == attempts:
                raise
            await asyncio.sleep(_RETRY_PAUSE_S * attempt)
    raise AssertionError("unreachable: attempts >= 1")


def check_window_count(start_ms: int, end_ms: int, config: ReconcileConfig) -> int:
    """How many reconciliation windows ``[start_ms, end_ms)`` touches (counted, not listed: a
    range may span millennia); RangeTooLarge above the configured maximum per request."""
    width = config.window_ms
    total = -(-end_ms // width) - start_ms // width
    if total > config.max_backfill_windows:
        raise RangeTooLarge(
            f"the range covers {total} windows of {width} ms; at most "
            f"{config.max_backfill_windows} per request: split it"
        )
    return total


async def backfill(
    *,
    pool: Pool,
    client: ProxyClient,
    symbol: str,
    window: TimeWindow,
    now_ms: int,
    config: ReconcileConfig,
    counters: ProcessorCounters,
    timescale: bool,
) -> AsyncIterator[BackfillProgress]:
    """Verify every window of ``window`` for ``symbol``, widened to whole reconciliation
    windows (the ledger's: never two overlapping), yielding progress after each.

    Raises RangeBeforeEpoch, RangeNotSettled or RangeTooLarge before any work.
    """
    settled = now_ms - config.settle_ms
    width = config.window_ms
    start, end = window.start_ms // width * width, -(-window.end_ms // width) * width
    if end > settled:
        raise RangeNotSettled(end, settled)
    total = check_window_count(start, end, config)
    if window.start_ms < 0:
        raise RangeBeforeEpoch
    for done, part in enumerate(split_aligned(start, end, width), start=1):
        rest = await _fetch(client, symbol, part, config.backfill_attempts)
        if done == 1:
            # Only once the provider has answered for the symbol: a Backfill of a ticker it
            # does not know must not leave a row making the symbol known to every API.
            async with pool.connection() as conn, conn.transaction():
                initial = (now_ms // config.window_ms) * config.window_ms
                await storage.ensure_symbol(conn, symbol, initial)
        result = await verify_window(
            pool, symbol, part, rest, timescale=timescale, counters=counters
        )
        outcome = result.outcome
        log.info(
            "backfill_window_verified",
            symbol=symbol,
            start_ms=part.start_ms,
            trades=outcome.trade_count,
            changes=outcome.change_count,
            done=done,
            total=total,
        )
        yield BackfillProgress(total, done, part, outcome.trade_count, outcome.change_count)
