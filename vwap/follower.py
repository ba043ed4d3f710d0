"""Follow ``ProcessorService.StreamEvents`` from a sequence, forever, missing nothing.

Reconnects with capped exponential backoff when the processor is unreachable or restarts, and
resumes at the last applied sequence + 1. Sequences are strictly increasing and gap-free: a
duplicate is skipped; a gap (events lost upstream) or an undecodable event is logged and passed
on as :class:`~vwap.events.EventsLost`, so that what was derived from the events is rebuilt. So
is a log that is not the one followed (the processor's database was replaced or restored): it
ends before the last applied sequence, or its event there was published at another time than
the one received; following resumes at its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import events_pb2, processor_pb2, processor_pb2_grpc

from tradekit.channels import service_channel
from tradekit.domain import SYMBOL_PATTERN
from tradekit.logs import event_logger
from tradekit.wire import WireError, newest_from_metadata, timestamp_from_ms
from vwap.events import DomainEvent, EventsLost, event_from_proto

log = event_logger("vwap.follower")

EventSink = Callable[[DomainEvent], None]


class EventFollower:
    """Applies the processor's events, in order, to ``sinks``; ``run()`` until cancelled."""

    def __init__(
        self,
        address: str,
        *,
        start_after: int,
        sinks: Sequence[EventSink],
        start_published_ms: int | None = None,
        initial_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
    ) -> None:
        self._address = address
        self._sinks = tuple(sinks)
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        #: The last sequence applied (or skipped as undecodable).
        self.last_sequence = start_after
        #: The publish time of that event as received (or read with it at start; None: not
        #: known), quoted when resuming so that a replaced log is noticed.
        self._last_publish: Timestamp | None = (
            None if start_published_ms is None else timestamp_from_ms(start_published_ms)
        )
        self.connections = 0
        self.gaps = 0
        self.duplicates = 0
        self._progress = asyncio.Condition()

    async def wait_for(self, sequence: int) -> None:
        """Return once ``sequence`` has been applied."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.last_sequence >= sequence)

    def _handle(self, event_msg: events_pb2.Event) -> None:
        seq = event_msg.sequence
        if seq <= self.last_sequence:
            self.duplicates += 1
            log.warning("event_duplicate", sequence=seq, last=self.last_sequence)
            return
        out: list[DomainEvent] = []
        if seq != self.last_sequence + 1:
            self.gaps += 1
            log.error("event_gap", expected=self.last_sequence + 1, received=seq)
            out.append(EventsLost(seq, None, f"events {self.last_sequence + 1}..{seq - 1} lost"))
        self.last_sequence = seq
        self._last_publish = event_msg.publish_time if event_msg.HasField("publish_time") else None
        try:
            out.append(event_from_proto(event_msg))
        except WireError as exc:
            log.error("event_undecodable", sequence=seq, error=str(exc))
            symbol = event_msg.symbol if SYMBOL_PATTERN.fullmatch(event_msg.symbol) else None
            out.append(EventsLost(seq, symbol, f"event {seq} undecodable: {exc}"))
        for event in out:
            for sink in self._sinks:
                sink(event)

    def _restart_at(self, newest: int, published_ms: int | None, details: str) -> None:
        """The processor's event log does not continue from the events applied here (its
        database was replaced or restored, or retention removed the events after them): what
        was derived from the events is dropped (an ``EventsLost`` of every
        symbol) and following resumes after its newest event, quoting ``published_ms``, its
        publish time (so that a log replaced again before the next event arrives is noticed
        too)."""
        reason = (
            "the processor's event log does not continue from the events applied here"
            f" (newest event {newest}, {self.last_sequence} applied here): replaced, restored"
            " or past its retention"
        )
        log.error(
            "event_log_replaced",
            newest=newest,
            last_sequence=self.last_sequence,
            processor_said=details,
        )
        self.gaps += 1
        self.last_sequence = newest
        self._last_publish = None if published_ms is None else timestamp_from_ms(published_ms)
        for sink in self._sinks:
            sink(EventsLost(newest, None, reason))

    async def _follow_once(self, stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
        request = processor_pb2.StreamEventsRequest(
            from_sequence=self.last_sequence + 1, last_publish_time=self._last_publish
        )
        call = stub.StreamEvents(request)
        self.connections += 1
        log.info("stream_opened", address=self._address, from_sequence=request.from_sequence)
        async for response in call:
            self._handle(response.event)
            async with self._progress:
                self._progress.notify_all()

    async def run(self) -> None:
        """Follow until cancelled, reconnecting with backoff."""
        backoff = self._initial_backoff_s
        async with service_channel(self._address) as channel:
            stub = processor_pb2_grpc.ProcessorServiceStub(channel)  # type: ignore[no-untyped-call]
            while True:
                before = self.last_sequence
                try:
                    await self._follow_once(stub)
                    log.warning("stream_ended", last_sequence=self.last_sequence)
                except grpc.aio.AioRpcError as exc:
                    log.warning(
                        "stream_failed",
                        code=exc.code().name,
                        details=exc.details() or "",
                        last_sequence=self.last_sequence,
                        retry_in_s=backoff,
                    )
                    newest = _newest_named(exc)
                    if newest is not None:
                        self._restart_at(*newest, exc.details() or "")
                        continue
                if self.last_sequence > before:
                    backoff = self._initial_backoff_s
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)


def _newest_named(error: grpc.aio.AioRpcError) -> tuple[int, int | None] | None:
    """The newest sequence a StreamEvents refused OUT_OF_RANGE names, and its publish time in
    ms when given; None for other errors."""
    if error.code() != grpc.StatusCode.OUT_OF_RANGE:
        return None
    # (key, value) pairs at run time; grpc-stubs types them as objects with attributes
    metadata: Any = error.trailing_metadata() or ()
    return newest_from_metadata(metadata)
