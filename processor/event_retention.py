"""Event-log retention: the processor deletes, once a minute, the events published more than
``EVENT_LOG_RETENTION`` ago that the NATS relay has published (the database's copy of what
JetStream keeps for ``NATS_MAX_AGE``), so the log does not grow with every trade for ever.

A prefix of the log goes, in batches, each with the floor that ``StreamEvents`` checks, so a
client resuming under it is told (OUT_OF_RANGE) instead of skipping events. 0 keeps every
event. An async context manager owning its task.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import psycopg

from processor.db import Pool
from processor.event_log import prune_events
from processor.stats import ProcessorCounters
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait, raise_if_cancel_lost

log = event_logger("processor.event_retention")

PERIOD_S = 60.0
BATCH = 10_000
#: Pause between batches of one turn: a backlog (the first run after an upgrade) is deleted
#: at a steady pace, not in one burst that competes with ingest for the database.
BATCH_PAUSE_S = 0.2


class EventRetention:
    """Prunes the event log every ``period_s`` while entered (nothing when ``retention_ms``
    is 0)."""

    def __init__(
        self,
        *,
        pool: Pool,
        retention_ms: int,
        counters: ProcessorCounters | None = None,
        period_s: float = PERIOD_S,
        batch: int = BATCH,
    ) -> None:
        self._pool = pool
        self._counters = counters if counters is not None else ProcessorCounters()
        self._retention_ms = retention_ms
        self._period_s = period_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventRetention:
        if self._retention_ms > 0:
            self._task = asyncio.create_task(self._run(), name="event-retention")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def pruned(self) -> int:
        """Events deleted since start (the processor's ``events_pruned``)."""
        return self._counters.events_pruned

    async def prune(self, *, pause_s: float = 0.0) -> int:
        """Delete every event past retention now, batch by batch, ``pause_s`` between
        batches; how many."""
        total = 0
        while True:
            async with self._pool.connection() as conn:
                deleted = await prune_events(
                    conn, retention_ms=self._retention_ms, limit=self._batch
                )
            total += deleted
            self._counters.events_pruned += deleted
            if deleted < self._batch:
                return total
            await asyncio.sleep(pause_s)

    async def _run(self) -> None:
        while True:
            raise_if_cancel_lost()
            try:
                deleted = await self.prune(pause_s=BATCH_PAUSE_S)
            except psycopg.Error as exc:  # the database is away: try again next period
                log.warning("event_retention_failed", error=str(exc).strip())
            else:
                if deleted:
                    log.info("events_pruned", deleted=deleted)
            await asyncio.sleep(self._period_s)
