"""Send turns shared by every StreamVwap stream: a cap on gRPC writes in flight.

With a thousand streams each writing as soon as it has a message, gRPC holds a thousand
writes in flight and every one of them waits for all the others: a message's delay grows with
the number of subscribers. Here a stream with something to send joins one line (first come,
first served) and at most ``turns`` writes are in flight, each made by a sender task holding a
turn: it takes the stream at the head of the line, writes that stream's oldest pending message,
and puts the stream back at the end of the line if it has more. While a stream waits in line
its queue conflates (see :mod:`vwap.conflation`), so each turn sends the newest value and no
backlog builds up. The stream's own handler does no per-message work: it waits for its end.

A write still in flight ``stuck_after_s`` after it began (a slow or stuck client, a full
flow-control window) loses its turn: a new sender takes over the line, so one slow client
cannot hold the others back. The stuck stream keeps its queue; once its write completes it
joins the line again. At most ``turns`` stuck writes are set aside this way.

    outlet = Outlet(max_pending=10_000)           # the hub offers messages to it
    reason = await outbox.serve(outlet, context.write)   # until it ends
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

import grpc

from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait
from vwap.conflation import ConflatingQueue

log = event_logger("vwap.outbox")

#: Writes in flight across all StreamVwap streams.
SEND_TURNS = 64
#: Seconds a write may hold its turn before the turn passes to a new sender.
STUCK_AFTER_S = 0.25

Write = Callable[[bytes], Awaitable[object]]

#: Why a stream's sending ended.
CLOSED = "closed"  # the end-of-stream marker (None) was reached
OVERFLOWED = "overflowed"  # more than max_pending messages piled up
FAILED = "failed"  # a write raised a gRPC error (the call ended under it)


class Outlet:
    """One stream's pending messages (``None`` ends the stream) and its place in the line."""

    __slots__ = ("_ended", "_outbox", "_write", "max_pending", "overflowed", "pending")

    def __init__(self, *, max_pending: int) -> None:
        self.pending: ConflatingQueue[bytes | None] = ConflatingQueue()
        self.max_pending = max_pending
        self.overflowed = False
        self._outbox: Outbox | None = None
        self._write: Write | None = None
        self._ended: asyncio.Future[str] | None = None

    def offer(self, message: bytes | None, key: Hashable | None = None) -> None:
        """Queue ``message`` (replacing the pending live message of ``key`` when given) and
        join the line when not already in it; mark the outlet overflowed when more than
        ``max_pending`` messages are pending."""
        pending = self.pending
        pending.push(message, key)
        if len(pending) > self.max_pending:
            self.overflowed = True
        outbox = self._outbox
        if outbox is not None and len(pending) == 1:
            outbox._schedule(self)


class _Sender:
    __slots__ = ("retired", "writing_since")

    def __init__(self) -> None:
        self.writing_since: float | None = None
        self.retired = False


class Outbox:
    """``turns`` sender tasks at most, serving one first-come, first-served line of outlets."""

    def __init__(self, *, turns: int = SEND_TURNS, stuck_after_s: float = STUCK_AFTER_S) -> None:
        if turns < 1:
            raise ValueError(f"turns must be at least 1, got {turns}")
        self.turns = turns
        self.stuck_after_s = stuck_after_s
        self._line: deque[Outlet] = deque()
        #: Outlets in the line or being written, so never in the line twice.
        self._busy: set[Outlet] = set()
        self._senders: dict[_Sender, asyncio.Task[None]] = {}
        self._active = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Turns taken from a stuck write.
        self.revoked = 0
        #: Exceptions of senders that crashed (a bug), raised by :meth:`aclose`.
        self.crashed: list[BaseException] = []
        #: Messages written.
        self.written = 0

    @property
    def in_flight(self) -> int:
        """Writes in flight (including ones that lost their turn)."""
        return sum(1 for s in self._senders if s.writing_since is not None)

    @property
    def waiting(self) -> int:
        """Streams in line."""
        return len(self._line)

    async def serve(self, outlet: Outlet, write: Write) -> str:
        """Send ``outlet``'s messages with ``write`` until it ends; why it ended
        (:data:`CLOSED`, :data:`OVERFLOWED` or :data:`FAILED`)."""
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        outlet._ended, outlet._write, outlet._outbox = ended, write, self
        try:
            if outlet.pending:
                self._schedule(outlet)
            return await ended
        finally:
            outlet._outbox = outlet._write = outlet._ended = None

    def _schedule(self, outlet: Outlet) -> None:
        if outlet in self._busy or self._closed:
            return
        self._busy.add(outlet)
        self._line.append(outlet)
        if self._active < self.turns:
            self._spawn()

    def _spawn(self) -> None:
        sender = _Sender()
        self._active += 1
        task = asyncio.get_running_loop().create_task(self._send(sender), name="vwap-stream-sender")
        task.add_done_callback(self._reap)
        self._senders[sender] = task

    def _reap(self, task: asyncio.Task[None]) -> None:
        """Keep a crashed sender's exception (logged now, raised by :meth:`aclose`)."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.crashed.append(exc)
            log.error("stream_sender_crashed", error=repr(exc))

    async def _send(self, me: _Sender) -> None:
        loop = asyncio.get_running_loop()
        line, busy = self._line, self._busy
        try:
            while line and not me.retired:
                outlet = line.popleft()
                ended, write = outlet._ended, outlet._write
                if ended is None or write is None or ended.done() or not outlet.pending:
                    busy.discard(outlet)
                    continue
                message = outlet.pending.pop()
                if outlet.overflowed or message is None:
                    busy.discard(outlet)
                    ended.set_result(OVERFLOWED if outlet.overflowed else CLOSED)
                    continue
                me.writing_since = loop.time()
                if self._timer is None:
                    self._arm(loop, me.writing_since)
                try:
                    await write(message)
                except grpc.aio.BaseError as exc:  # the call ended under us: end it, go on
                    busy.discard(outlet)
                    if not ended.done():
                        ended.set_result(FAILED)
                    log.info("stream_write_failed", error=repr(exc))
                    continue
                except Exception:  # a bug: end this stream (its client sees it end), crash
                    busy.discard(outlet)
                    if not ended.done():
                        ended.set_result(FAILED)
                    raise
                finally:
                    me.writing_since = None
                self.written += 1
                if outlet.pending and outlet._ended is ended and not ended.done():
                    line.append(outlet)  # back of the line: one message per turn
                else:
                    busy.discard(outlet)
                    if outlet.pending and outlet._outbox is self:  # a late offer raced us
                        self._schedule(outlet)
        finally:
            del self._senders[me]
            if not me.retired:
                self._active -= 1
            if line and self._active < self.turns and not self._closed:
                self._spawn()  # a retired sender put its stream back: keep the line moving

    def _arm(self, loop: asyncio.AbstractEventLoop, since: float) -> None:
        self._timer = loop.call_at(since + self.stuck_after_s, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        oldest: float | None = None
        # Stuck writes beyond the turns are never revoked: when every write is slow (the
        # machine, not a client, is slow) revoking more would only pile up writes.
        senders = list(self._senders)  # replacements join it below
        stuck = sum(1 for sender in senders if sender.retired)
        for sender in senders:
            since = sender.writing_since
            if since is None or sender.retired:
                continue
            if now - since >= self.stuck_after_s:
                if stuck >= self.turns:
                    since = now  # at the cap: look again one period from now
                else:
                    stuck += 1
                    sender.retired = True  # it finishes its write, then stops
                    self._active -= 1
                    self.revoked += 1
                    if self._line and self._active < self.turns:
                        self._spawn()
                    continue
            if oldest is None or since < oldest:
                oldest = since
        if oldest is not None:
            self._arm(loop, oldest)

    async def aclose(self) -> None:
        """Stop every sender (shutdown); idempotent. A sender that crashed (a bug) is raised
        here (an ExceptionGroup of every crash), never dropped."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._senders.values()):
            await cancel_and_wait(task)
        crashed, self.crashed = self.crashed, []
        if crashed:
            raise BaseExceptionGroup("StreamVwap senders crashed", crashed)
