"""Answer concurrent GetVwap cache misses with one SQL statement per batch.

Callers hand :meth:`WindowBatcher.read` a window (a symbol and its planned pieces) and wait for
their own :class:`~vwap.storage.WindowRead`. A dispatcher task gathers what is queued and starts
one statement (:meth:`WindowLane.windows`) per batch on one of ``lanes`` lanes (each holds a
pool connection, so that many statements may run at once):

- a batch leaves when ``flush_at`` windows are queued, or ``max_wait_s`` after its oldest window
  arrived, whichever comes first, and as soon as a lane is free; it holds at most
  ``max_windows``; windows queued while every lane is busy go together in the next batch;
- each caller gets its own result or its own error: when a statement fails with a
  :class:`psycopg.DataError` (one window the database cannot represent), every window of the
  batch is read again alone, so only the bad one fails;
- a caller that leaves (cancelled, or its deadline passed: :class:`DeadlinePassed`) takes only
  its own place; the statement is cancelled (once, so psycopg cancels it on the server) when
  every caller of its batch has left;
- the dispatcher and the statements are tasks of the batcher, cancelled and awaited by
  :meth:`WindowBatcher.close` (idempotent); callers still waiting then get
  :class:`BatcherClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import psycopg

from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait
from vwap.errors import DeadlinePassed
from vwap.ranges import Piece
from vwap.storage import VwapStore, WindowLane, WindowRead

log = event_logger("vwap.batching")


class BatcherClosed(psycopg.OperationalError):
    """The batcher stopped before answering. Like a lost database connection (it is a
    ``psycopg.OperationalError``), the gRPC layer answers UNAVAILABLE: retry."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How windows are gathered into statements."""

    #: Statements that may run at once (each on its own pool connection).
    lanes: int = 2
    #: Most windows in one statement.
    max_windows: int = 100
    #: Longest time a window waits for others before its batch leaves (seconds).
    max_wait_s: float = 0.008
    #: Queued windows that make a batch leave at once.
    flush_at: int = 16

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.max_windows < 1 or self.flush_at < 1 or self.max_wait_s < 0:
            raise ValueError(f"invalid batch limits: {self}")


class _Waiter:
    """One caller's window and the future its answer goes to."""

    __slots__ = ("arrived", "batch", "future", "pieces", "symbol")

    def __init__(
        self, symbol: str, pieces: Sequence[Piece], future: asyncio.Future[WindowRead], at: float
    ) -> None:
        self.symbol = symbol
        self.pieces = pieces
        self.future = future
        self.arrived = at
        #: The batch it went out with (None while queued).
        self.batch: _Batch | None = None


class _Batch:
    """The waiters of one statement and how many of them still wait."""

    __slots__ = ("answered", "lane", "live", "task", "waiters")

    def __init__(self, waiters: list[_Waiter], lane: WindowLane) -> None:
        self.waiters = waiters
        self.lane = lane
        self.live = len(waiters)
        self.answered = False
        self.task: asyncio.Task[None] | None = None

    def left(self) -> None:
        """A caller stopped waiting: cancel the statement once nobody waits for it."""
        self.live -= 1
        if self.live == 0 and not self.answered and self.task is not None:
            self.task.cancel()


class WindowBatcher:
    """Batches window reads into one statement each; an async context manager."""

    def __init__(self, store: VwapStore, limits: BatchLimits | None = None) -> None:
        self.limits = limits or BatchLimits()
        self._queue: deque[_Waiter] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._lanes = [store.lane() for _ in range(self.limits.lanes)]
        self._free: asyncio.Queue[WindowLane] = asyncio.Queue()
        for lane in self._lanes:
            self._free.put_nowait(lane)
        self._statements: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: Statements run (retries of single windows included) and windows they read.
        self.statements = 0
        self.windows = 0
        #: Batches retried window by window after a DataError.
        self.retried_batches = 0

    async def __aenter__(self) -> WindowBatcher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start the dispatcher (in the running loop)."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        if self._dispatcher is None:
            self._loop = loop = asyncio.get_running_loop()
            self._dispatcher = loop.create_task(self._dispatch(loop), name="vwap-batch-dispatcher")

    async def close(self) -> None:
        """Stop dispatching, cancel running statements and wait for them; idempotent."""
        self._closed = True
        dispatcher, self._dispatcher = self._dispatcher, None
        await cancel_and_wait(dispatcher)
        while self._statements:
            task = next(iter(self._statements))
            await cancel_and_wait(task)
            self._statements.discard(task)
        for lane in self._lanes:
            await lane.close()
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(BatcherClosed("the VWAP service is shutting down"))

    async def read(
        self, symbol: str, pieces: Sequence[Piece], *, timeout_ms: int | None = None
    ) -> WindowRead:
        """The sums over ``pieces`` of ``symbol``; DeadlinePassed after ``timeout_ms``."""
        loop = self._loop
        if self._closed or loop is None:
            raise BatcherClosed("the window batcher is not running")
        future: asyncio.Future[WindowRead] = loop.create_future()
        queue = self._queue
        waiter = _Waiter(symbol, pieces, future, loop.time())
        queue.append(waiter)
        if len(queue) == 1:
            self._arrived.set()
        if len(queue) >= self.limits.flush_at:
            self._full.set()
        timer = (
            None
            if timeout_ms is None
            else loop.call_at(waiter.arrived + max(1, timeout_ms) / 1000, _expire, future)
        )
        try:
            return await future
        except (asyncio.CancelledError, DeadlinePassed):
            # A caller leaving while queued leaves a done future, which the dispatcher skips.
            if waiter.batch is not None:
                waiter.batch.left()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            lane = await self._free.get()
            try:
                waiters = await self._next_batch(loop)
            except BaseException:
                self._free.put_nowait(lane)
                raise
            batch = _Batch(waiters, lane)
            task = loop.create_task(self._run(batch), name="vwap-batch")
            batch.task = task
            for waiter in waiters:
                waiter.batch = batch
            self._statements.add(task)
            task.add_done_callback(functools.partial(self._finished, batch))

    async def _next_batch(self, loop: asyncio.AbstractEventLoop) -> list[_Waiter]:
        queue = self._queue
        limits = self.limits
        while True:
            while not queue:
                self._arrived.clear()
                await self._arrived.wait()
            self._full.clear()
            delay = queue[0].arrived + limits.max_wait_s - loop.time()
            if len(queue) < limits.flush_at and delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._full.wait()
            waiters: list[_Waiter] = []
            while queue and len(waiters) < limits.max_windows:
                waiter = queue.popleft()
                if not waiter.future.done():  # its caller left while it was queued
                    waiters.append(waiter)
            if waiters:
                return waiters

    def _finished(self, batch: _Batch, task: asyncio.Task[None]) -> None:
        self._statements.discard(task)
        self._free.put_nowait(batch.lane)
        # Every waiter is answered: drop the batch's references to them, so batch and waiters
        # (each points to its batch) are freed by reference counting, not left as a cycle for
        # the garbage collector (a full collection pauses the whole service).
        batch.waiters = []
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("batch_failed", error=repr(exc))

    async def _run(self, batch: _Batch) -> None:
        try:
            try:
                reads = await self._statement(batch.lane, batch.waiters)
            except psycopg.DataError as exc:
                if len(batch.waiters) == 1:
                    _answer(batch, [exc])
                    return
                self.retried_batches += 1
                log.info("batch_retried_alone", windows=len(batch.waiters), error=str(exc))
                await self._alone(batch)
                return
            except psycopg.Error as exc:  # each caller gets the statement's error as its own
                _answer(batch, [exc] * len(batch.waiters))
                return
            _answer(batch, reads)
        except BaseException as exc:
            # Cancelled (every caller left, or close()) or a bug: whoever still waits is told,
            # and the task ends with the exception (a bug is logged by _finished).
            error = exc if isinstance(exc, Exception) else BatcherClosed("the batcher stopped")
            _answer(batch, [error] * len(batch.waiters))
            raise

    async def _alone(self, batch: _Batch) -> None:
        """Read each still-awaited window of ``batch`` by itself."""
        for waiter in batch.waiters:
            if waiter.future.done():
                continue
            try:
                [read] = await self._statement(batch.lane, [waiter])
            except psycopg.Error as exc:
                _settle(waiter.future, exc)
            else:
                _settle(waiter.future, read)
        batch.answered = True

    async def _statement(self, lane: WindowLane, waiters: list[_Waiter]) -> list[WindowRead]:
        self.statements += 1
        self.windows += len(waiters)
        return await lane.windows([(w.symbol, w.pieces) for w in waiters])


def _expire(future: asyncio.Future[WindowRead]) -> None:
    if not future.done():
        future.set_exception(DeadlinePassed("the deadline passed during the query"))


def _settle(future: asyncio.Future[WindowRead], outcome: WindowRead | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _answer(batch: _Batch, outcomes: Sequence[WindowRead | BaseException]) -> None:
    batch.answered = True
    for waiter, outcome in zip(batch.waiters, outcomes, strict=False):
        _settle(waiter.future, outcome)
