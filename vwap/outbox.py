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
joins the line again. At most ``turns`` stuck writes are set aside this way: when every write
is slow (the machine, not a client, is slow) setting more aside would only pile up writes.

A reader that stops reading is cut off, so neither its turn nor its memory is held for good:
its stream ends (:data:`OVERFLOWED`) as soon as more than ``max_pending`` messages pile up in
its queue, or (:data:`STALLED`) once one of its writes has been in flight ``stalled_after_s``;
its queue is dropped and the turn its write held, if any, passes to a new sender at once (the
write itself stays with gRPC until the client reads or its connection closes). So many readers
stalled at once (more than twice ``turns``: ``turns`` set aside, ``turns`` more holding the
turns) delay the others by ``stalled_after_s`` at most. The handler ends such a stream with
RESOURCE_EXHAUSTED; gRPC sends that status after the messages already given to it, so a
client that stopped reading sees it when it reads again, and the server's keepalive closes
the connection of one that stopped answering.

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
#: Seconds a write may stay in flight before its stream is ended (its reader stalled).
STALLED_AFTER_S = 10.0

Write = Callable[[bytes], Awaitable[object]]

#: Why a stream's sending ended.
CLOSED = "closed"  # the end-of-stream marker (None) was reached
OVERFLOWED = "overflowed"  # more than max_pending messages piled up
STALLED = "stalled"  # a write was in flight stalled_after_s (the client stopped reading)
FAILED = "failed"  # a write raised a gRPC error (the call ended under it)


class Outlet:
    """One stream's pending messages (``None`` ends the stream) and its place in the line."""

    __slots__ = ("_ended", "_outbox", "_sender", "_write", "cut_off", "max_pending", "pending")

    def __init__(self, *, max_pending: int) -> None:
        self.pending: ConflatingQueue[bytes | None] = ConflatingQueue()
        self.max_pending = max_pending
        #: Why the outbox cut this stream off (:data:`OVERFLOWED` or :data:`STALLED`), or None.
        self.cut_off: str | None = None
        self._outbox: Outbox | None = None
        self._write: Write | None = None
        self._ended: asyncio.Future[str] | None = None
        #: The sender whose write to this stream is in flight.
        self._sender: _Sender | None = None

    def offer(self, message: bytes | None, key: Hashable | None = None) -> None:
        """Queue ``message`` (replacing the pending live message of ``key`` when given) and
        join the line when not already in it; cut the stream off (:data:`OVERFLOWED`) when
        more than ``max_pending`` messages are pending. Ignored once cut off."""
        if self.cut_off is not None:
            return
        pending = self.pending
        pending.push(message, key)
        if len(pending) > self.max_pending:
            self._cut(OVERFLOWED)
            return
        outbox = self._outbox
        if outbox is not None and len(pending) == 1:
            outbox._schedule(self)

    def _cut(self, reason: str) -> None:
        """End the stream now with ``reason``: drop its queue, end its serve, and give up the
        turn of a write in flight to it."""
        self.cut_off = reason
        self.pending = ConflatingQueue()
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(reason)
        outbox = self._outbox
        if outbox is not None:
            outbox._cut_off(self, reason)


class _Sender:
    __slots__ = ("outlet", "retired", "writing_since")

    def __init__(self) -> None:
        self.writing_since: float | None = None
        #: The stream being written to while a write is in flight.
        self.outlet: Outlet | None = None
        self.retired = False


class Outbox:
    """``turns`` sender tasks at most, serving one first-come, first-served line of outlets."""

    def __init__(
        self,
        *,
        turns: int = SEND_TURNS,
        stuck_after_s: float = STUCK_AFTER_S,
        stalled_after_s: float = STALLED_AFTER_S,
    ) -> None:
        if turns < 1:
            raise ValueError(f"turns must be at least 1, got {turns}")
        self.turns = turns
        self.stuck_after_s = stuck_after_s
        self.stalled_after_s = stalled_after_s
        self._line: deque[Outlet] = deque()
        #: Outlets in the line or being written, so never in the line twice.
        self._busy: set[Outlet] = set()
        self._senders: dict[_Sender, asyncio.Task[None]] = {}
        self._active = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Turns taken from a stuck write.
        self.revoked = 0
        #: Streams cut off (overflowed or stalled).
        self.cut_offs = 0
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
        (:data:`CLOSED`, :data:`OVERFLOWED`, :data:`STALLED` or :data:`FAILED`)."""
        if outlet.cut_off is not None:  # it overflowed before it was served
            return outlet.cut_off
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
                if message is None:
                    busy.discard(outlet)
                    ended.set_result(CLOSED)
                    continue
                me.writing_since, me.outlet, outlet._sender = loop.time(), outlet, me
                self._wake_by(loop, me.writing_since + self.stuck_after_s)
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
                    me.writing_since = me.outlet = outlet._sender = None
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

    def _wake_by(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        """Look at the writes in flight at ``at`` at the latest."""
        timer = self._timer
        if timer is None or timer.when() > at:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(at, self._expire, loop)

    def _retire(self, sender: _Sender) -> None:
        """Take ``sender``'s turn (it finishes its write, then stops) and keep the line moving."""
        sender.retired = True
        self._active -= 1
        if self._line and self._active < self.turns and not self._closed:
            self._spawn()

    def _cut_off(self, outlet: Outlet, reason: str) -> None:
        """``outlet`` was cut off: the turn of a write in flight to it passes on at once."""
        self.cut_offs += 1
        sender = outlet._sender
        if sender is not None and not sender.retired:
            self._retire(sender)
        log.info("stream_cut_off", reason=reason)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for sender in list(self._senders):
            outlet, since = sender.outlet, sender.writing_since
            if outlet is not None and since is not None and now - since >= self.stalled_after_s:
                if outlet.cut_off is None:
                    outlet._cut(STALLED)  # gives up the turn too, while the stream is served
                if not sender.retired:
                    self._retire(sender)
        # Writes in flight to streams not cut off; the set-aside ones count against the cap.
        watched = [
            (sender, since)
            for sender in self._senders
            if (since := sender.writing_since) is not None
            and sender.outlet is not None
            and sender.outlet.cut_off is None
        ]
        stuck = sum(1 for sender, _ in watched if sender.retired)
        wake: float | None = None
        for sender, since in watched:
            at = since + self.stalled_after_s
            if not sender.retired:
                if now - since < self.stuck_after_s:
                    at = since + self.stuck_after_s
                elif stuck < self.turns:
                    stuck += 1
                    self.revoked += 1
                    self._retire(sender)
                else:  # at the cap (every write slow?): look again one period from now
                    at = min(at, now + self.stuck_after_s)
            if wake is None or at < wake:
                wake = at
        if wake is not None:
            self._timer = loop.call_at(wake, self._expire, loop)

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
