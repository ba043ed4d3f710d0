"""The ingest service: an async context manager owning the feed and the writer tasks.

    async with IngestService(pool=pool, ws_url=url, symbols={"BTC"}, counters=counters):
        ...  # trades flow into the database until the block exits

On entry it seeds the duplicate memory from the newest stored trades and, when the feed stored
trades before (an earlier run, possibly killed), opens a gap from the newest of them, closed by
the first valid frame of the new connection. On exit it stops reading, writes what is queued
(within ``close_timeout_ms``), then cancels and awaits its tasks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from types import TracebackType

from processor.db import Pool
from processor.ingest.config import IngestConfig
from processor.ingest.dedup import RecentIds
from processor.ingest.feed import Clock, Feed, wall_clock_ms
from processor.ingest.gaps import GapTracker
from processor.ingest.lanes import WriterLanes
from processor.ingest.storage import newest_trade_ids, newest_ws_trade_ms
from processor.provider_clock import ProviderClock
from processor.stats import ProcessorCounters
from tradekit.domain import check_symbol
from tradekit.logs import event_logger

log = event_logger("processor.ingest")

RESTART_REASON = "restart: trades after the last committed batch of the previous run"


class IngestService:
    """Keeps the WebSocket feed flowing into ``trades`` (see module docstring)."""

    def __init__(
        self,
        *,
        pool: Pool,
        ws_url: str,
        symbols: Iterable[str],
        counters: ProcessorCounters,
        config: IngestConfig | None = None,
        clock_ms: Clock = wall_clock_ms,
        rng: random.Random | None = None,
        provider_clock: ProviderClock | None = None,
    ) -> None:
        self._pool = pool
        self._symbols = frozenset(check_symbol(s) for s in symbols)
        if not self._symbols:
            raise ValueError("IngestService needs at least one symbol")
        self._config = config or IngestConfig()
        self._counters = counters
        self._dedup = RecentIds(self._config.dedup_capacity)
        self._gaps = GapTracker(margin_ms=self._config.gap_margin_ms)
        self.writer = WriterLanes(
            pool,
            counters,
            symbols=self._symbols,
            lanes=self._config.writers,
            batch_size=self._config.batch_size,
            flush_interval_ms=self._config.flush_interval_ms,
            queue_size=self._config.queue_size,
            retry_max_ms=self._config.write_retry_max_ms,
            materialised_lag_ms=self._config.materialised_lag_ms,
        )
        self.feed = Feed(
            url=ws_url,
            symbols=self._symbols,
            config=self._config,
            sink=self.writer.put,
            dedup=self._dedup,
            gaps=self._gaps,
            counters=counters,
            clock_ms=clock_ms,
            rng=rng,
            provider_clock=provider_clock,
        )
        self._group: asyncio.TaskGroup | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def symbols(self) -> frozenset[str]:
        """Symbols read from the feed."""
        return self._symbols

    async def _prepare(self) -> None:
        symbols = sorted(self._symbols)
        async with self._pool.connection() as conn:
            if self._config.dedup_seed:
                for symbol in symbols:
                    ids = await newest_trade_ids(conn, symbol, self._config.dedup_seed)
                    self._dedup.seed(symbol, ids)
            newest = await newest_ws_trade_ms(conn, self.writer.symbol_lanes)
        if newest is not None:
            start = newest - self._config.gap_margin_ms
            self._gaps.resume_from(start, RESTART_REASON)
            log.info("ingest_resuming", gap_start_ms=start)

    async def __aenter__(self) -> IngestService:
        await self._prepare()
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        self._writer_task = group.create_task(self.writer.run(), name="ingest-writer")
        self._feed_task = group.create_task(self.feed.run(), name="ingest-feed")
        log.info("ingest_started", url=self.feed.url, symbols=",".join(sorted(self._symbols)))
        return self

    async def flush(self) -> None:
        """Return once every record read so far is committed."""
        await self.writer.flush()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._closed or self._group is None:
            return None
        self._closed = True
        assert self._feed_task is not None
        assert self._writer_task is not None
        self._feed_task.cancel()
        await asyncio.wait([self._feed_task])
        if not self._writer_task.done():
            try:
                async with asyncio.timeout(self._config.close_timeout_ms / 1000):
                    await self.writer.flush()
            except TimeoutError:
                log.warning("ingest_flush_timeout", unwritten=self.writer.queued)
        self._writer_task.cancel()
        try:
            await self._group.__aexit__(exc_type, exc, tb)
        finally:
            log.info("ingest_stopped", **self._counters.snapshot())
        return None
