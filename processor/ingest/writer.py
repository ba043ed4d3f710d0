"""Batched, bounded writes of feed records.

The feed puts records in an ``asyncio.Queue(maxsize=queue_size)`` and waits when it is full;
:meth:`BatchWriter.run` takes up to ``batch_size`` records or whatever arrived within
``flush_interval_ms`` of the first one and commits them in one transaction
(:func:`processor.ingest.storage.write_batch`). A batch the database cannot reach is retried
with backoff (the queue fills, the feed waits); when the connection was lost, the batch may
have committed before the loss, so the retry first asks the database (every batch records its
writer's :class:`~processor.ingest.storage.BatchKey` as it commits) and skips a batch that
landed, never writing its quarantined frames and gaps twice. A batch the database refuses for
its content is split in halves, each written on its own (recursively), so one bad record among
thousands costs about two transactions per halving, not one per record; a trade still refused
alone is quarantined with the database error.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence

import psycopg

from processor.db import Connection, Pool
from processor.ingest.backoff import Backoff
from processor.ingest.feed import Clock, wall_clock_ms
from processor.ingest.records import Gap, Quarantined, Received, Record
from processor.ingest.storage import (
    BatchCounts,
    BatchKey,
    committed_counts,
    materialised_cutoff,
    write_batch,
)
from processor.stats import ProcessorCounters
from tradekit.logs import event_logger
from tradekit.money import to_text
from tradekit.tasks import raise_if_cancel_lost

log = event_logger("processor.ingest.writer")


def _split(batch: Sequence[Record]) -> tuple[list[Received], list[Quarantined], list[Gap]]:
    received: list[Received] = []
    quarantined: list[Quarantined] = []
    gaps: list[Gap] = []
    for record in batch:
        if isinstance(record, Received):
            received.append(record)
        elif isinstance(record, Quarantined):
            quarantined.append(record)
        else:
            gaps.append(record)
    return received, quarantined, gaps


def _as_text(item: Received) -> str:
    t = item.trade
    return (
        f'{{"ticker": "{t.symbol}", "ts": {t.ts_ms}, "tradeId": {t.trade_id}, '
        f'"price": "{to_text(t.price)}", "quantity": "{to_text(t.quantity)}"}}'
    )


class BatchWriter:
    """Owns the bounded queue and writes its records in batches."""

    def __init__(
        self,
        pool: Pool,
        counters: ProcessorCounters,
        *,
        batch_size: int,
        flush_interval_ms: int,
        queue_size: int,
        retry_max_ms: int = 5_000,
        materialised_lag_ms: int | None = None,
        clock_ms: Clock = wall_clock_ms,
    ) -> None:
        self._pool = pool
        self._stale_before: Callable[[], int] | None = (
            None
            if materialised_lag_ms is None
            else lambda: materialised_cutoff(clock_ms(), materialised_lag_ms)
        )
        self._clock_ms = clock_ms
        self._counters = counters
        self._batch_size = batch_size
        self._interval_s = flush_interval_ms / 1000
        self._queue: asyncio.Queue[Record] = asyncio.Queue(maxsize=queue_size)
        self._retry = Backoff(
            initial_s=min(0.05, retry_max_ms / 1000),
            maximum_s=retry_max_ms / 1000,
            rng=random.Random(),
        )
        self.batches_written = 0
        self._writer_id = uuid.uuid4()
        self._batches_begun = 0

    @property
    def queued(self) -> int:
        """Records waiting in the queue (never more than ``queue_size``)."""
        return self._queue.qsize()

    @property
    def queue_size(self) -> int:
        """Capacity of the queue."""
        return self._queue.maxsize

    async def put(self, record: Record) -> None:
        """Queue ``record``; waits while the queue is full."""
        await self._queue.put(record)

    def offer(self, record: Record) -> bool:
        """Queue ``record`` unless the queue is full; whether it was queued (no coroutine: the
        feed calls this once per frame)."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            return False
        return True

    async def flush(self) -> None:
        """Return once every record queued so far is committed (or definitively refused)."""
        await self._queue.join()

    async def run(self) -> None:
        """Write batches until cancelled."""
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            raise_if_cancel_lost()  # a pool borrow lost it: stop instead of waiting for work
            batch: list[Record] = [await queue.get()]
            deadline = loop.time() + self._interval_s
            while len(batch) < self._batch_size:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                if loop.time() >= deadline:
                    break
                try:
                    async with asyncio.timeout_at(deadline):
                        batch.append(await queue.get())
                except TimeoutError:
                    break
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _commit(self, batch: Sequence[Record]) -> None:
        """Commit ``batch``; when the database refuses it, commit its halves in order."""
        try:
            await self._write(batch)
        except psycopg.Error as exc:
            if len(batch) == 1:
                await self._refused(batch[0], exc)
                return
            log.error("batch_refused", records=len(batch), error=str(exc).strip())
            middle = len(batch) // 2
            await self._commit(batch[:middle])
            await self._commit(batch[middle:])

    async def _refused(self, record: Record, exc: psycopg.Error) -> None:
        """A record the database refused on its own: a trade is quarantined with the error."""
        if not isinstance(record, Received):
            log.error("record_refused", record=repr(record), error=str(exc).strip())
            return
        error = f"rejected by the database: {str(exc).strip()}"
        log.error("trade_refused", symbol=record.trade.symbol, error=error)
        await self._write([Quarantined(_as_text(record), error, record.received_ms)])

    async def _write(self, batch: Sequence[Record]) -> None:
        """Commit ``batch``, retrying while the database is unreachable; raise psycopg.Error
        when the database refuses it."""
        received, quarantined, gaps = _split(batch)
        self._batches_begun += 1
        key = BatchKey(self._writer_id, self._batches_begun)
        connection_lost = False
        while True:
            try:
                stale_before = self._stale_before
                async with self._pool.connection() as conn:
                    if connection_lost:
                        counts = await self._write_again(
                            conn, key, received, quarantined, gaps, stale_before
                        )
                    else:
                        result = await write_batch(
                            conn, received, quarantined, gaps, stale_before=stale_before, key=key
                        )
                        counts = result.counts()
            except psycopg.OperationalError as exc:
                connection_lost = True
                delay = self._retry.next_delay()
                log.warning(
                    "batch_write_retry", records=len(batch), error=str(exc).strip(), delay_s=delay
                )
                await asyncio.sleep(delay)
                continue
            self._retry.reset()
            self._count(counts)
            return

    @staticmethod
    async def _write_again(
        conn: Connection,
        key: BatchKey,
        received: Sequence[Received],
        quarantined: Sequence[Quarantined],
        gaps: Sequence[Gap],
        stale_before: Callable[[], int] | None,
    ) -> BatchCounts:
        """Write a batch whose earlier attempt lost its connection, unless that attempt committed
        (then its recorded counts)."""
        async with conn.transaction():
            landed = await committed_counts(conn, key)
            if landed is not None:
                log.info("batch_already_committed", batch=key.number, inserted=landed.inserted)
                return landed
            result = await write_batch(
                conn, received, quarantined, gaps, stale_before=stale_before, key=key
            )
            return result.counts()

    def _count(self, result: BatchCounts) -> None:
        counters = self._counters
        counters.trades_ingested += result.inserted
        counters.duplicates_dropped += result.conflicts
        counters.frames_quarantined += result.quarantined
        counters.gaps_recorded += result.gaps
        self.batches_written += 1
