"""Several batch writers in parallel, each owning a fixed share of the symbols.

A trade goes to the writer of its symbol (symbols are dealt round-robin in sorted order, so the
assignment is the same on every start); quarantined frames and gaps go to the first writer.
Writers of disjoint symbols never wait on each other's per-symbol trades lock, so while one
commits, another's statement runs in a second PostgreSQL backend. A symbol's trades are still
written by one writer, in the order the feed read them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from processor.db import Pool
from processor.ingest.records import Received, Record
from processor.ingest.writer import BatchWriter
from processor.stats import ProcessorCounters


def deal_symbols(symbols: Iterable[str], lanes: int) -> dict[str, int]:
    """Lane of each symbol: sorted symbols dealt round-robin over ``lanes`` (>= 1)."""
    if lanes < 1:
        raise ValueError("need at least one lane")
    return {symbol: index % lanes for index, symbol in enumerate(sorted(set(symbols)))}


class WriterLanes:
    """Routes records to per-lane :class:`BatchWriter` s and runs them together."""

    def __init__(
        self,
        pool: Pool,
        counters: ProcessorCounters,
        *,
        symbols: Iterable[str],
        lanes: int,
        batch_size: int,
        flush_interval_ms: int,
        queue_size: int,
        retry_max_ms: int = 5_000,
        materialised_lag_ms: int | None = None,
    ) -> None:
        self._lane_of = deal_symbols(symbols, lanes)
        count = min(lanes, len(self._lane_of)) or 1
        self.writers = [
            BatchWriter(
                pool,
                counters,
                batch_size=batch_size,
                flush_interval_ms=flush_interval_ms,
                queue_size=max(1, queue_size // count),
                retry_max_ms=retry_max_ms,
                materialised_lag_ms=materialised_lag_ms,
            )
            for _ in range(count)
        ]

    @property
    def symbol_lanes(self) -> list[list[str]]:
        """The sorted symbols of each lane, by lane."""
        lanes: list[list[str]] = [[] for _ in self.writers]
        for symbol, lane in sorted(self._lane_of.items()):
            lanes[lane].append(symbol)
        return lanes

    @property
    def queued(self) -> int:
        """Records waiting in all lanes."""
        return sum(writer.queued for writer in self.writers)

    @property
    def queue_size(self) -> int:
        """Capacity of all lanes."""
        return sum(writer.queue_size for writer in self.writers)

    @property
    def batches_written(self) -> int:
        """Batches committed by all lanes."""
        return sum(writer.batches_written for writer in self.writers)

    async def put(self, record: Record) -> None:
        """Queue ``record`` in its lane; waits while that lane is full."""
        if isinstance(record, Received):
            writer = self.writers[self._lane_of[record.trade.symbol]]
        else:
            writer = self.writers[0]
        if not writer.offer(record):
            await writer.put(record)

    async def flush(self) -> None:
        """Return once every record queued so far in any lane is committed."""
        for writer in self.writers:
            await writer.flush()

    async def run(self) -> None:
        """Run every lane's writer until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index, writer in enumerate(self.writers):
                group.create_task(writer.run(), name=f"ingest-writer-{index}")
