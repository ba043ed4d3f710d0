"""The Reconciler: a periodic loop that verifies every symbol's settled windows against REST.

Each turn (every ``config.interval_ms``), per symbol, in one short transaction: make sure the
``symbols`` row exists (the first time, ``verified_until`` starts at the current window's start:
history before the processor first ran is reconciled only by an explicit backfill), read the
feed gaps after the watermark, plan windows (gap windows first; verified windows beyond the
watermark skipped) and mark them ``pending``. Then the windows are fetched through the proxy,
``config.concurrency`` at a time over all symbols, and applied one at a time per symbol in plan
order. A window that fails stays unverified and is planned again next turn; ``pending`` is
informational only, so after a crash the planner simply plans from ``verified_until`` again.

In TimescaleDB mode each turn ends by refreshing the continuous aggregates over the ranges queued
by changed windows (``CALL refresh_continuous_aggregate`` on an autocommit connection, 10-second
then minute then hour then day buckets, each up to where its refresh policy stops: see
:func:`refresh_calls`), then removing those queue rows. In plain mode triggers keep the
aggregates exact and nothing is needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType

import psycopg

from processor.db import RPC_CONNECTION_WAIT_S, Pool
from processor.reconcile import storage
from processor.reconcile.apply import WindowResult, verify_window
from processor.reconcile.backfill import BackfillProgress, backfill, check_window_count
from processor.reconcile.config import ReconcileConfig
from processor.reconcile.coverage import Coverage, coverage
from processor.reconcile.errors import ReconcileError, WindowFetchFailed, WindowRejected
from processor.reconcile.planner import plan_windows
from processor.reconcile.proxy_client import ProxyClient
from processor.stats import ProcessorCounters
from tradekit.domain import TimeWindow, Trade
from tradekit.logs import event_logger
from tradekit.tasks import raise_if_cancel_lost

log = event_logger("processor.reconcile")

#: Continuous aggregates refreshed in TimescaleDB mode, finest first, with their bucket width
#: and their refresh policy's ``end_offset`` (migrations 0002 and 0003).
AGGREGATES: tuple[tuple[str, int, int], ...] = (
    ("trade_buckets_10s", 10_000, 10_000),
    ("trade_buckets_1m", 60_000, 60_000),
    ("trade_buckets_1h", 3_600_000, 3_600_000),
    ("trade_buckets_1d", 86_400_000, 86_400_000),
)


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def aligned(start_ms: int, end_ms: int, width_ms: int) -> tuple[int, int]:
    """``[start_ms, end_ms)`` widened to whole buckets of ``width_ms``."""
    return (start_ms // width_ms) * width_ms, -((-end_ms) // width_ms) * width_ms


def refresh_calls(start_ms: int, end_ms: int, now_ms: int) -> list[tuple[str, int, int]]:
    """The ``(view, start, end)`` refreshes that bring a changed range ``[start_ms, end_ms)``
    into the continuous aggregates, finest level first (pure).

    Each level refreshes the range widened to its whole buckets, but never a bucket ending
    after ``now - end_offset``, where its policy stops: such a bucket may still be filling.
    Materialised, it would move the aggregate's watermark past it, and the trades stored in it
    afterwards (on time, so not queued for a refresh) would be missing from it until a policy
    next covered it, up to a day later for the daily level. Above the policies' reach real-time
    aggregation reads the trades themselves, so the change needs no refresh there."""
    calls = []
    for view, width, end_offset in AGGREGATES:
        lo, hi = aligned(start_ms, end_ms, width)
        reach = now_ms - end_offset
        hi = min(hi, reach - reach % width)
        if lo < hi:
            calls.append((view, lo, hi))
    return calls


class Reconciler:
    """Owns the reconciliation loop and the proxy channel; an async context manager."""

    def __init__(
        self,
        *,
        pool: Pool,
        proxy_address: str,
        symbols: Sequence[str],
        counters: ProcessorCounters,
        config: ReconcileConfig,
        storage_mode_timescale: bool,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._pool = pool
        self._symbols = tuple(symbols)
        self._counters = counters
        self._config = config
        self._timescale = storage_mode_timescale
        self._clock = clock
        self._client = ProxyClient(address=proxy_address, page_wait_ms=config.page_wait_ms)
        self._stack: AsyncExitStack | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._fetch_slots = asyncio.Semaphore(config.concurrency)

    async def __aenter__(self) -> Reconciler:
        await self._create_symbol_rows()
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._client)
            group = await stack.enter_async_context(asyncio.TaskGroup())
            self._loop_task = group.create_task(self._run(), name="reconcile-loop")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel the loop, wait for it and close the proxy channel; idempotent."""
        stack, self._stack = self._stack, None
        if self._loop_task is not None:
            self._loop_task.cancel()
        if stack is not None:
            await stack.aclose()

    async def _run(self) -> None:
        while True:
            raise_if_cancel_lost()  # a pool borrow lost it: stop instead of another turn
            # (Do not catch run_once's ExceptionGroup here: on Python 3.11 a TaskGroup whose
            # child fails after the group began waiting leaves this task's cancel count at 1,
            # and the check above would then stop the loop without a word.)
            try:
                await self.run_once()
            except psycopg.Error as exc:  # the database is away: try again next turn
                log.error("reconcile_turn_failed", error=str(exc).strip())
            await asyncio.sleep(self._config.interval_ms / 1000)

    async def run_once(self) -> list[WindowResult]:
        """One turn over every symbol: plan, mark pending, fetch and apply; the applied results."""
        now_ms = self._clock()
        plans = [await self._plan(symbol, now_ms) for symbol in self._symbols]
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._verify_in_order(symbol, windows))
                for symbol, windows in zip(self._symbols, plans, strict=True)
                if windows
            ]
        results = [r for t in tasks for r in t.result()]
        if self._timescale:
            await self.refresh_aggregates()
        return results

    async def _create_symbol_rows(self) -> None:
        """Each symbol's row (its watermark at the current window's start) before the loop
        starts, so before the processor's feed does: a trade stored before the first plan made
        the row would lie below the watermark it set, never verified (the ingest drops those
        once the row exists: the verified history begins where the processor first ran). With
        the database away the first plan makes them."""
        initial = self._clock() // self._config.window_ms * self._config.window_ms
        try:
            async with self._pool.connection() as conn, conn.transaction():
                for symbol in self._symbols:
                    await storage.ensure_symbol(conn, symbol, initial)
        except psycopg.OperationalError as exc:
            log.error("symbol_rows_not_created", error=str(exc).strip())

    async def _plan(self, symbol: str, now_ms: int) -> list[TimeWindow]:
        cfg = self._config
        async with self._pool.connection() as conn, conn.transaction():
            initial = (now_ms // cfg.window_ms) * cfg.window_ms
            watermark = await storage.ensure_symbol(conn, symbol, initial)
            gaps = await storage.gaps_after(conn, watermark)
            done = await storage.verified_starts_after(conn, symbol, watermark)
            windows = plan_windows(
                verified_until_ms=watermark,
                gaps=gaps,
                now_ms=now_ms,
                settle_ms=cfg.settle_ms,
                window_ms=cfg.window_ms,
                skip_starts=done,
                limit=cfg.max_windows_per_tick,
            )
            await storage.mark_pending(conn, symbol, windows)
        return windows

    async def _verify_in_order(
        self, symbol: str, windows: Sequence[TimeWindow]
    ) -> list[WindowResult]:
        """Fetch ``windows`` concurrently (bounded), apply them one by one in plan order.

        Applying in order makes a trade stored at a wrong, later time one UPDATED correction
        (found as a stray copy by its true window) rather than a delete and an insert.
        """
        async with asyncio.TaskGroup() as group:
            fetches = [group.create_task(self._fetch(symbol, w)) for w in windows]
            results: list[WindowResult] = []
            for window, fetch in zip(windows, fetches, strict=True):
                rest = await fetch
                if rest is not None and (result := await self._apply(symbol, window, rest)):
                    results.append(result)
        return results

    async def _fetch(self, symbol: str, window: TimeWindow) -> list[Trade] | None:
        async with self._fetch_slots:
            try:
                return await self._client.fetch_window(symbol, window)
            except WindowFetchFailed as exc:
                log.warning(
                    "window_fetch_failed", symbol=symbol, start_ms=window.start_ms, error=str(exc)
                )
            except WindowRejected as exc:
                self._counters.windows_rejected += 1
                log.error(
                    "window_rejected", symbol=symbol, start_ms=window.start_ms, error=str(exc)
                )
        return None

    async def _apply(
        self, symbol: str, window: TimeWindow, rest: Sequence[Trade]
    ) -> WindowResult | None:
        try:
            result = await verify_window(
                self._pool,
                symbol,
                window,
                rest,
                timescale=self._timescale,
                counters=self._counters,
            )
        except (ReconcileError, psycopg.Error) as exc:
            log.error(
                "window_verify_failed", symbol=symbol, start_ms=window.start_ms, error=str(exc)
            )
            return None
        outcome = result.outcome
        log.info(
            "window_verified",
            symbol=symbol,
            start_ms=window.start_ms,
            end_ms=window.end_ms,
            trades=outcome.trade_count,
            changes=outcome.change_count,
            inserted=outcome.inserted,
            updated=outcome.updated,
            deleted=outcome.deleted,
            verified_until_ms=result.verified_until_ms,
        )
        return result

    async def refresh_aggregates(self) -> int:
        """Refresh the continuous aggregates over queued ranges; the number of ranges done."""
        async with self._pool.connection() as conn:
            queued = await storage.pending_refreshes(conn)
        if not queued:
            return 0
        async with self._pool.connection() as conn:
            await conn.set_autocommit(True)  # CALL refresh_... cannot run in a transaction
            try:
                # the database's clock, as the refresh policies use
                now_ms = await storage.database_now_ms(conn)
                for _, start_ms, end_ms in queued:
                    for view, lo, hi in refresh_calls(start_ms, end_ms, now_ms):
                        await storage.refresh_aggregate(conn, view, lo, hi)
            finally:
                await conn.set_autocommit(False)
        async with self._pool.connection() as conn, conn.transaction():
            await storage.forget_refreshes(conn, [i for i, _, _ in queued])
        log.info("aggregates_refreshed", ranges=len(queued))
        return len(queued)

    def backfill(self, symbol: str, window: TimeWindow) -> AsyncIterator[BackfillProgress]:
        """Reconcile ``window`` of ``symbol`` now (see :func:`backfill.backfill`)."""
        return backfill(
            pool=self._pool,
            client=self._client,
            symbol=symbol,
            window=window,
            now_ms=self._clock(),
            config=self._config,
            counters=self._counters,
            timescale=self._timescale,
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols reconciled every turn (SYMBOLS)."""
        return self._symbols

    async def unknown(self, symbols: Iterable[str]) -> list[str]:
        """Those of ``symbols`` this processor has nothing about: outside SYMBOLS and without
        reconciliation state (a Backfill creates it)."""
        others = [s for s in symbols if s not in self._symbols]
        if not others:
            return []
        async with self._pool.connection(timeout=RPC_CONNECTION_WAIT_S) as conn:
            return [s for s in others if await storage.verified_range(conn, s) is None]

    async def coverage(self, symbol: str, window: TimeWindow) -> Coverage:
        """Coverage entries of ``symbol`` overlapping ``window`` and its verified range;
        RangeTooLarge when the window covers more ledger windows than one answer may hold."""
        check_window_count(window.start_ms, window.end_ms, self._config)
        async with self._pool.connection(timeout=RPC_CONNECTION_WAIT_S) as conn:
            return await coverage(conn, symbol, window, now_ms=self._clock())
