"""Test support for the VWAP service: storing trades, and a fake processor event source.

The fake processor is a real gRPC server implementing ``ProcessorService.StreamEvents`` from an
in-memory list; every event is first committed to PostgreSQL the way the processor does it (the
data change and ``append_events`` in one transaction), so the store and the stream agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
import psycopg
from trading.v1 import events_pb2, processor_pb2, processor_pb2_grpc

from devstack.ports import free_port
from processor.event_log import NewEvent, append_events, head_and_publish_ms
from processor.events import (
    Correction,
    CorrectionKind,
    WindowOutcome,
    correction_event,
    trade_event,
    window_event,
    wrap_event,
)
from tradekit.domain import TimeWindow, Trade
from tradekit.wire import ms_from_timestamp, newest_metadata
from vwap.app import RunningVwap
from vwap.storage import dt_from_ms

_KINDS = {
    "inserted": CorrectionKind.INSERTED,
    "updated": CorrectionKind.UPDATED,
    "deleted": CorrectionKind.DELETED,
}


async def insert_trades(conn: psycopg.AsyncConnection[Any], trades: Iterable[Trade]) -> None:
    """Insert trades the way the processor stores them."""
    rows = [(t.symbol, t.trade_id, dt_from_ms(t.ts_ms), t.price, t.quantity) for t in trades]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO trades (symbol, trade_id, ts, price, quantity, source)"
                " VALUES (%s, %s, %s, %s, %s, 'ws')",
                rows,
            )


class FakeProcessor:
    """A real gRPC ProcessorService serving StreamEvents from a list; restartable on its port."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.events: list[events_pb2.Event] = []
        self.requests: list[int] = []
        self._changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        """host:port of the fake processor."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving (again) on the same port."""
        server = grpc.aio.server()
        processor_pb2_grpc.add_ProcessorServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _StreamEvents(self), server
        )
        server.add_insecure_port(self.address)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop serving, cutting open streams."""
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def replace_log(self, keep: int) -> None:
        """The processor's database restored from a backup holding the first ``keep`` events:
        later events, and the trades they added, are gone. Call while stopped."""
        conn = await psycopg.AsyncConnection.connect(self.database_url)
        async with conn, conn.transaction():
            for event in self.events[keep:]:
                if event.WhichOneof("payload") == "trade":
                    await conn.execute(
                        "DELETE FROM trades WHERE symbol = %s AND trade_id = %s",
                        (event.symbol, event.trade.trade.trade_id),
                    )
            await conn.execute("DELETE FROM events WHERE seq > %s", (keep,))
            await conn.execute("UPDATE event_head SET seq = %s", (keep,))
        del self.events[keep:]

    async def wait_for(self, seq: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= seq)

    async def release(self, events: Iterable[events_pb2.Event]) -> None:
        """Make committed events visible on the stream."""
        async with self._changed:
            for event in events:
                assert event.sequence == len(self.events) + 1
                self.events.append(event)
            self._changed.notify_all()

    async def commit(
        self, change: Callable[[psycopg.AsyncConnection[Any]], Any], event: NewEvent
    ) -> events_pb2.Event:
        """Run ``change`` and append ``event`` in one transaction; return the event, unreleased."""
        conn = await psycopg.AsyncConnection.connect(self.database_url)
        async with conn, conn.transaction():
            await change(conn)
            seq = await append_events(conn, [event])
            _, published = await head_and_publish_ms(conn, seq)
        assert published is not None
        return wrap_event(seq, event.symbol, event.type_name, event.payload, published)

    async def trade(self, trade: Trade, *, release: bool = True) -> events_pb2.Event:
        """Store a new trade and publish its TradeEvent."""

        async def change(conn: psycopg.AsyncConnection[Any]) -> None:
            await insert_trades(conn, [trade])

        event = await self.commit(change, trade_event(trade, 0))
        if release:
            await self.release([event])
        return event

    async def verify(
        self, symbol: str, start_ms: int, end_ms: int, *, until_ms: int | None = None
    ) -> events_pb2.Event:
        """Mark ``[start_ms, end_ms)`` verified, the watermark to ``until_ms`` (default
        ``end_ms``; another value: windows verified out of order), and publish it."""
        watermark = end_ms if until_ms is None else until_ms

        async def change(conn: psycopg.AsyncConnection[Any]) -> None:
            until = dt_from_ms(watermark)
            await conn.execute(
                "INSERT INTO symbols (symbol, verified_until) VALUES (%s, %s)"
                " ON CONFLICT (symbol) DO UPDATE SET verified_until = excluded.verified_until",
                (symbol, until),
            )

        outcome = WindowOutcome(symbol, TimeWindow(start_ms, end_ms), 0, 0, 0, 0)
        event = await self.commit(change, window_event(outcome, watermark))
        await self.release([event])
        return event

    async def correct(
        self, kind: str, old: Trade | None, new: Trade | None, *, release: bool = True
    ) -> events_pb2.Event:
        """Apply a correction to the store and publish its CorrectionEvent."""
        some = new if new is not None else old
        assert some is not None

        async def change(conn: psycopg.AsyncConnection[Any]) -> None:
            if old is not None:
                await conn.execute(
                    "DELETE FROM trades WHERE symbol = %s AND trade_id = %s",
                    (old.symbol, old.trade_id),
                )
            if new is not None:
                await insert_trades(conn, [new])

        correction = Correction(_KINDS[kind], some.symbol, some.trade_id, old, new)
        window = TimeWindow(
            some.ts_ms - some.ts_ms % 60_000, some.ts_ms - some.ts_ms % 60_000 + 60_000
        )
        event = await self.commit(
            change, correction_event(correction, window, 1000 + len(self.events))
        )
        if release:
            await self.release([event])
        return event


class _StreamEvents(processor_pb2_grpc.ProcessorServiceServicer):
    def __init__(self, fake: FakeProcessor) -> None:
        self._fake = fake

    async def StreamEvents(
        self, request: processor_pb2.StreamEventsRequest, context: Any
    ) -> AsyncIterator[processor_pb2.StreamEventsResponse]:
        self._fake.requests.append(request.from_sequence)
        events = self._fake.events
        newest = len(events)
        before = request.from_sequence - 1
        elsewhere = request.HasField("last_publish_time") and (
            1 <= before <= newest and events[before - 1].publish_time != request.last_publish_time
        )
        if before > newest or elsewhere:  # as the processor: a position of another log
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"from_sequence {request.from_sequence} is not a position of this event log",
                trailing_metadata=newest_metadata(
                    newest,
                    ms_from_timestamp(events[-1].publish_time, field="publish_time")
                    if events
                    else None,
                ),
            )
        seq = max(1, request.from_sequence)
        while True:
            await self._fake.wait_for(seq)
            yield processor_pb2.StreamEventsResponse(event=self._fake.events[seq - 1])
            seq += 1


VwapStarter = Callable[..., AbstractAsyncContextManager[tuple[RunningVwap, Any]]]
