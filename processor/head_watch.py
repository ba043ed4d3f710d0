"""Wakes waiters when the event log grows: one LISTEN connection, many in-process waiters.

``append_events`` notifies ``trading_events`` with the new head in the writing transaction, so
the notification arrives on commit. Waiters also re-check on a timeout, so a missed
notification only delays, never loses, an event.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import psycopg

from processor.db import Connection
from processor.event_log import NOTIFY_CHANNEL, head_sequence
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("processor.head_watch")


class HeadWatcher:
    """Tracks the event log head; an async context manager owning its listener task."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._condition = asyncio.Condition()
        self.head = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HeadWatcher:
        conn = await self._connect()
        self._task = asyncio.create_task(self._listen(conn), name="head-watch")
        return self

    async def _connect(self) -> Connection:
        conn: Connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        await conn.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(NOTIFY_CHANNEL))
        )
        await self._reset(await head_sequence(conn))
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _listen(self, conn: Connection) -> None:
        """Follow notifications; on a lost connection, log, reconnect and re-read the head."""
        while True:
            try:
                async for notify in conn.notifies():
                    await self.advance(int(notify.payload))
            except psycopg.OperationalError as exc:
                log.warning("listen_connection_lost", error=str(exc).strip())
            finally:
                await conn.close()
            while True:
                await asyncio.sleep(1.0)
                try:
                    conn = await self._connect()
                    break
                except psycopg.OperationalError as exc:
                    log.warning("listen_reconnect_failed", error=str(exc).strip())

    async def _reset(self, head: int) -> None:
        """The head as read from the database on (re)connecting; it may be lower than the one
        recorded when the database was replaced or restored from a backup, and is taken as is
        (kept, waits past the new head would return at once and streams would spin)."""
        async with self._condition:
            if head != self.head:
                if head < self.head:
                    log.error("event_head_moved_back", recorded=self.head, database=head)
                self.head = head
                self._condition.notify_all()

    async def advance(self, head: int) -> None:
        """Record that the log reached ``head`` and wake the waiters."""
        async with self._condition:
            if head > self.head:
                self.head = head
                self._condition.notify_all()

    async def wait_beyond(self, seq: int, patience_s: float) -> bool:
        """Wait until the head passes ``seq`` or ``patience_s`` seconds pass; True if it passed.

        A cancellation always propagates, even one arriving as the head passes: with
        ``asyncio.wait_for`` (Python 3.11) that case returned True instead, and an owner
        stopping the waiting task waited forever."""
        async with self._condition:
            try:
                async with asyncio.timeout(patience_s):
                    await self._condition.wait_for(lambda: self.head > seq)
            except TimeoutError:
                return False
            return True
