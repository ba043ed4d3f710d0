"""Publishes the event log to NATS JetStream in sequence order, each event exactly once.

Every message carries ``Nats-Msg-Id: evt-<seq>`` (JetStream drops a re-publish within its
duplicate window), ``Trading-Event-Type`` and ``Trading-Sequence``. A batch is published
pipelined on one connection with a reply subject on its last message only: JetStream stores a
connection's messages in order, so when that one acknowledgement's stream sequence is exactly
the batch size past the stream's previous last sequence, every message of the batch is stored.
Anything else (a message refused or dropped, a duplicate, another publisher on the stream) makes
the relay publish the batch again with an acknowledgement per message, which ``Nats-Msg-Id``
turns into a no-op for what is already stored. The relay records its position in
``event_relay`` after each acknowledged batch. After a crash between publishing and recording,
it looks at the stream's tail, learns which of the unrecorded sequences JetStream already holds
and publishes only the others, so NATS never holds a duplicate and misses nothing, however long
the process was down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

import nats
import psycopg
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from processor.db import Pool
from processor.event_log import LoggedEvent, head_sequence, read_events
from processor.events import SEQUENCE_HEADER, STREAM_SUBJECTS
from processor.head_watch import HeadWatcher
from processor.nats_wire import hpub_batch, send_raw
from processor.stats import ProcessorCounters
from tradekit.entry import redacted_url
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("processor.relay")

#: How long JetStream remembers a message id to drop a re-published event (``Nats-Msg-Id``).
DUPLICATE_WINDOW_S = 120.0


# What to do about a stream holding another log's events. Not a purge: the stream would drop
# the re-published message ids as duplicates for its duplicate window (two minutes by
# default), and the relay would take them as stored.
_START_AFRESH = (
    "stop the processor, delete the stream, reset the relay (UPDATE event_relay SET"
    " published_seq = 0) and start the processor: it creates the stream and publishes this log"
    " into it from the start"
)


class RelayError(RuntimeError):
    """The JetStream stream cannot be used for this event log."""


class PublishRefused(RelayError):
    """JetStream did not store an event of a batch (the batch is published again later)."""


class _BatchAcks:
    """The acknowledgements awaited for one pipelined batch, by event sequence."""

    __slots__ = ("done", "error", "last_stream_seq", "pending", "stored")

    def __init__(self, seqs: Iterable[int]) -> None:
        self.pending = set(seqs)
        self.stored = 0
        self.last_stream_seq = 0
        self.error: str | None = None
        self.done = asyncio.Event()

    def answer(self, seq: int, data: bytes, headers: dict[str, str] | None) -> None:
        """JetStream answered the publish of ``seq`` with ``data``."""
        if seq not in self.pending:
            return
        if headers or not data.startswith(b'{"stream":') or b'"error"' in data:
            # no stream (503 status), or a JetStream API error: the batch fails
            status = (headers or {}).get("Status", "")
            self.error = f"{seq}: {status} {data[:200]!r}".strip()
            self.done.set()
            return
        self.pending.discard(seq)
        if b'"duplicate":true' not in data:
            self.stored += 1
        self.last_stream_seq = max(self.last_stream_seq, _ack_stream_seq(data))
        if not self.pending:
            self.done.set()


def _ack_stream_seq(data: bytes) -> int:
    """The stream sequence a JetStream publish acknowledgement names (0 when it has none)."""
    try:
        ack = json.loads(data)
    except ValueError:
        return 0
    seq = ack.get("seq") if isinstance(ack, dict) else None
    return seq if isinstance(seq, int) else 0


class _ConnectionLog:
    """Logs the relay's NATS connection: while NATS is unreachable, a warning for the first
    failed attempt, then at most one every ``every_s`` with the attempts so far; when the
    connection is made, lost and made again; any other client error."""

    def __init__(self, url: str, every_s: float = 30.0) -> None:
        self._url = redacted_url(url)
        self._every_s = every_s
        self._up = False
        self._closing = False
        self._failed = 0
        self._since = 0.0
        self._logged_at = 0.0

    async def error(self, exc: Exception) -> None:
        if self._up:
            log.warning("nats_error", url=self._url, error=repr(exc))
            return
        now = time.monotonic()
        self._failed += 1
        if self._failed == 1:
            self._since = now
        elif now - self._logged_at < self._every_s:
            return
        self._logged_at = now
        log.warning(
            "nats_unreachable",
            url=self._url,
            error=repr(exc),
            failed_attempts=self._failed,
            for_s=round(now - self._since, 1),
        )

    def connected(self) -> None:
        if self._failed:
            log.info("nats_connected", url=self._url, after_failed_attempts=self._failed)
        self._up, self._failed = True, 0

    def closing(self) -> None:
        """The relay closes the connection: losing it is no news."""
        self._closing = True

    async def disconnected(self) -> None:
        if self._up and not self._closing:
            log.warning("nats_disconnected", url=self._url)
        self._up = False

    async def reconnected(self) -> None:
        self.connected()


class NatsRelay:
    """Owns a NATS connection and the publishing task; an async context manager."""

    def __init__(
        self,
        *,
        pool: Pool,
        nats_url: str,
        stream: str,
        watcher: HeadWatcher,
        counters: ProcessorCounters,
        batch_size: int = 1000,
        max_age_s: float = 7 * 86400.0,
        drain_timeout_s: float = 5.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self._ack_timeout_s = ack_timeout_s
        self._inbox: str | None = None
        self._acks: _BatchAcks | None = None
        self._drain_timeout_s = drain_timeout_s
        self._pool = pool
        self._nats_url = nats_url
        self._stream = stream
        self._watcher = watcher
        self._counters = counters
        self._batch_size = batch_size
        self._max_age_s = max_age_s
        self._nc: NatsClient | None = None
        self._connection_log = _ConnectionLog(nats_url)
        self._task: asyncio.Task[None] | None = None
        self.published_seq = 0
        #: The stream's last sequence as of the last acknowledged batch (None: unknown).
        self._stream_seq: int | None = None
        #: Batches confirmed by their last message's acknowledgement, and re-published with
        #: an acknowledgement per message.
        self.batches_confirmed_at_once = 0
        self.batches_acknowledged_per_message = 0

    async def __aenter__(self) -> NatsRelay:
        """Connect (trying again as long as NATS is unreachable, logged by
        :class:`_ConnectionLog`), make sure of the stream, recover and start publishing."""
        connection_log = self._connection_log
        self._nc = await nats.connect(
            self._nats_url,
            max_reconnect_attempts=-1,
            name="processor",
            drain_timeout=5,
            error_cb=connection_log.error,
            disconnected_cb=connection_log.disconnected,
            reconnected_cb=connection_log.reconnected,
        )
        connection_log.connected()
        try:
            self._inbox = self._nc.new_inbox() + ".*"
            await self._nc.subscribe(self._inbox, cb=self._on_ack)
            js = self._nc.jetstream()
            await self._ensure_stream(js)
            self.published_seq = await self._recover(js)
        except BaseException:
            nc, self._nc = self._nc, None
            connection_log.closing()
            await nc.close()
            raise
        self._task = asyncio.create_task(self._run(js), name="nats-relay")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        # Cancelled again until it ends: nats-py's requests and flushes (asyncio.wait_for on
        # Python 3.11) can lose a cancel, and the publishing loop then waits on as if never
        # stopped (the worker's stop ran into its bound about once in five under load).
        await cancel_and_wait(task, again_every_s=0.5)
        if self._nc is not None:
            if exc_type is None:
                await self._publish_remaining(self._nc.jetstream())
            self._connection_log.closing()
            await self._nc.drain()
            self._nc = None

    async def _publish_remaining(self, js: JetStreamContext) -> None:
        """On a graceful stop, publish what the last writers appended (within a time bound);
        anything left is published by the next start.

        The stream's tail is looked at first, as at start: the stop may have cut the loop
        short with a batch in the stream whose acknowledgement was lost (its message ids no
        longer deduplicate after an outage longer than the duplicate window), or in flight."""
        try:
            async with asyncio.timeout(self._drain_timeout_s):
                self.published_seq = max(self.published_seq, await self._recover(js))
                while True:
                    async with self._pool.connection() as conn:
                        batch = await read_events(
                            conn,
                            from_seq=self.published_seq + 1,
                            symbols=(),
                            limit=self._batch_size,
                        )
                    if not batch:
                        break
                    await self._publish(js, batch)
                    self.published_seq = batch[-1].seq
                    await self._record(self.published_seq)
        except (
            TimeoutError,
            nats.errors.Error,
            psycopg.OperationalError,
            OSError,
            RelayError,  # PublishRefused, or a stream this log cannot use: the next start says
        ) as exc:
            log.warning("relay_drain_incomplete", error=repr(exc), position=self.published_seq)
        log.info("relay_stopped", position=self.published_seq)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self._stream,
            subjects=[STREAM_SUBJECTS],
            # JetStream refuses a duplicate window longer than the stream keeps messages.
            duplicate_window=min(DUPLICATE_WINDOW_S, self._max_age_s),
            max_age=self._max_age_s,
        )
        try:
            await js.stream_info(self._stream)
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream_created", stream=self._stream, subjects=STREAM_SUBJECTS)

    async def _db_published(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT published_seq FROM event_relay")
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def _record(self, seq: int) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE event_relay SET published_seq = greatest(published_seq, %s)", (seq,)
            )

    async def _recover(self, js: JetStreamContext) -> int:
        """Publish what a crash left unrecorded, exactly once; return the published position."""
        published = await self._db_published()
        info = await js.stream_info(self._stream)
        if info.state.messages == 0:
            return published
        present: dict[int, bytes] = {}
        stream_seq = info.state.last_seq
        while stream_seq >= info.state.first_seq:
            try:
                msg = await js.get_msg(self._stream, stream_seq)
            except NotFoundError:  # a message deleted from the stream: a hole, not the end
                stream_seq -= 1
                continue
            seq = int((msg.headers or {}).get(SEQUENCE_HEADER, "0"))
            if seq <= published:
                break
            present[seq] = msg.data or b""
            stream_seq -= 1
        if not present:
            return published
        last = max(present)
        async with self._pool.connection() as conn:
            # The database's head, not the watcher's: after a restore the watcher may not have
            # reconnected yet and still hold the old log's head.
            head = await head_sequence(conn)
            if last > head:
                raise RelayError(
                    f"JetStream stream {self._stream} holds event sequence {last} but this"
                    f" database's event log ends at {head}; {_START_AFRESH}"
                )
            unrecorded = await read_events(
                conn,
                from_seq=published + 1,
                symbols=(),
                limit=last - published,
                through_seq=last,
            )
        for event in unrecorded:
            if event.seq in present and present[event.seq] != event.payload:
                raise RelayError(
                    f"JetStream stream {self._stream} holds another event {event.seq} than this"
                    " database's event log (the database was replaced or restored after the"
                    f" stream got it); {_START_AFRESH}"
                )
        missing = [e for e in unrecorded if e.seq not in present]
        await self._publish(js, missing)
        await self._record(last)
        log.info(
            "relay_recovered",
            published=published,
            already_in_stream=len(present),
            republished=len(missing),
            position=last,
        )
        return last

    async def failure(self) -> None:
        """Wait until the publishing task ends, which it does only by failing (a stream it
        must not publish to: ``RelayError``), and raise its error."""
        assert self._task is not None, "the relay is not running"
        await asyncio.shield(self._task)

    async def _publish(self, js: JetStreamContext, events: Sequence[LoggedEvent]) -> None:
        """Publish ``events`` and return once JetStream holds every one; raise on an error or a
        missing acknowledgement (the caller retries: ``Nats-Msg-Id`` makes a re-publish a no-op).
        One acknowledgement for the batch when it proves the batch stored (see module
        docstring), else one per message."""
        if not events:
            return
        if self._stream_seq is None:
            self._stream_seq = (await js.stream_info(self._stream)).state.last_seq
        before = self._stream_seq
        self._stream_seq = None  # unknown until this batch is acknowledged
        acks = await self._send(events, ack_every=False)
        if acks.stored == 1 and acks.last_stream_seq == before + len(events):
            self.batches_confirmed_at_once += 1
        else:  # some may have been stored by the first send: each is now acknowledged once
            acks = await self._send(events, ack_every=True)
            self.batches_acknowledged_per_message += 1
        self._stream_seq = acks.last_stream_seq or None
        self._counters.events_published += len(events)

    async def _send(self, events: Sequence[LoggedEvent], *, ack_every: bool) -> _BatchAcks:
        """Publish ``events`` pipelined on one connection (JetStream stores them in this
        order), asking an acknowledgement for each (``ack_every``) or for the last only; wait
        for the acknowledgements asked for."""
        assert self._nc is not None
        assert self._inbox is not None
        nc = self._nc
        asked = {event.seq for event in events} if ack_every else {events[-1].seq}
        acks = _BatchAcks(asked)
        self._acks = acks
        try:
            commands = hpub_batch(
                ((e.subject, e.type_name, e.seq, e.payload) for e in events),
                reply_prefix=self._inbox[:-1],  # "<inbox>.": each reply ends with the sequence
                ask=asked,
            )
            await send_raw(nc, commands)
            async with asyncio.timeout(self._ack_timeout_s):
                await acks.done.wait()
        finally:
            self._acks = None
        if acks.error is not None:
            raise PublishRefused(f"JetStream refused event {acks.error}")
        return acks

    async def _on_ack(self, msg: Msg) -> None:
        """A JetStream publish acknowledgement (or error) for the batch in flight."""
        acks = self._acks
        if acks is None:
            return  # late answer to a batch already given up (it is published again)
        try:
            seq = int(msg.subject.rpartition(".")[2])
        except ValueError:
            return
        acks.answer(seq, msg.data, msg.headers)

    async def _run(self, js: JetStreamContext) -> None:
        failed = False
        while True:
            try:
                if failed:
                    # The failed batch may be in the stream in part or in whole (an
                    # acknowledgement lost, not the message): its message ids deduplicate only
                    # within the duplicate window, so look at the stream's tail, as at start.
                    self.published_seq = max(self.published_seq, await self._recover(js))
                    failed = False
                async with self._pool.connection() as conn:
                    batch = await read_events(
                        conn, from_seq=self.published_seq + 1, symbols=(), limit=self._batch_size
                    )
                    head = await head_sequence(conn) if not batch else None
                if head is not None and head < self.published_seq:
                    # The log moved back under the relay (its database restored from a
                    # backup; its connections may not even have failed): the stream is
                    # compared with this log as at start, and refused when it holds others.
                    log.error("event_log_moved_back", head=head, position=self.published_seq)
                    self.published_seq = await self._recover(js)
                    continue
                if batch:
                    await self._publish(js, batch)
                    self.published_seq = batch[-1].seq
                    await self._record(self.published_seq)
                if len(batch) < self._batch_size:
                    await self._watcher.wait_beyond(self.published_seq, patience_s=1.0)
            except (
                nats.errors.Error,
                psycopg.OperationalError,
                OSError,
                TimeoutError,
                PublishRefused,
            ) as exc:
                log.warning("relay_publish_failed", error=repr(exc), position=self.published_seq)
                failed = True
                await asyncio.sleep(1.0)
