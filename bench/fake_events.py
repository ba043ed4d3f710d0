"""A stand-in for the processor's event side: trades stamped with the wall clock, committed to
PostgreSQL the way the processor commits them (the trade and its event in one transaction),
then served on a real ``ProcessorService.StreamEvents`` gRPC server.

    async with FakeEventSource(database_url) as source:
        trade, seq = await source.emit("BTC")  # committed, then visible on the stream

Benchmarks run it in its own process (so the service under test does not share a GIL with the
load it measures): ``python -m bench.fake_events --database-url URL`` prints
``listening <host:port>``, then obeys stdin, one reply line per command:

- ``emit <SYM>,...``: one trade of each symbol; prints the head sequence;
- ``steady <rate> <duration_s> <SYM>,...``: ``rate`` trades/s over ``duration_s``, alternating
  symbols; prints JSON ``{"last": {symbol: sequence}, "emit_s": seconds}``;
- ``trades <from>``: prints a JSON list of the trades emitted from index ``from`` on, each
  ``[symbol, trade_id, ts_ms, price, quantity, sequence]`` (decimals as strings; sequence is
  the event's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import grpc
import psycopg
from trading.v1 import events_pb2, processor_pb2, processor_pb2_grpc

from processor.event_log import append_events
from processor.events import trade_event, wrap_event
from tradekit.domain import Trade
from vwap.storage import dt_from_ms

INSERT_SQL = (
    "INSERT INTO trades (symbol, trade_id, ts, price, quantity, source)"
    " VALUES (%s, %s, %s, %s, %s, 'ws')"
)
TICK = Decimal("0.01")
QTY_STEP = Decimal("0.0001")


class FakeEventSource:
    """Commits seeded random-walk trades one by one and streams their ``TradeEvent``s."""

    def __init__(self, database_url: str, *, seed: int = 7) -> None:
        self._database_url = database_url
        self._rng = random.Random(seed)
        self._ticks: dict[str, int] = {}
        self._next_id: dict[str, int] = {}
        self._events: list[events_pb2.Event] = []
        self._changed = asyncio.Condition()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._server: grpc.aio.Server | None = None
        self.port = 0
        #: Every trade emitted, in order.
        self.trades: list[Trade] = []
        #: The event sequence of each trade in :attr:`trades`.
        self.sequences: list[int] = []

    @property
    def address(self) -> str:
        """host:port of the StreamEvents server."""
        return f"127.0.0.1:{self.port}"

    @property
    def head(self) -> int:
        """The sequence of the newest streamed event."""
        return len(self._events)

    async def __aenter__(self) -> FakeEventSource:
        self._conn = await psycopg.AsyncConnection.connect(self._database_url, autocommit=True)
        server = grpc.aio.server()
        processor_pb2_grpc.add_ProcessorServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _StreamEvents(self), server
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self

    async def __aexit__(self, *exc: object) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    def _next_trade(self, symbol: str) -> Trade:
        ticks = self._ticks.get(symbol, 2_000_000 + 100_000 * len(self._ticks))
        ticks = max(100, ticks + self._rng.randint(-30, 30))
        self._ticks[symbol] = ticks
        trade_id = self._next_id.get(symbol, 1)
        self._next_id[symbol] = trade_id + 1
        return Trade(
            symbol,
            trade_id,
            int(time.time() * 1000),
            ticks * TICK,
            self._rng.randint(1, 50_000) * QTY_STEP,
        )

    async def emit(self, symbol: str) -> tuple[Trade, int]:
        """Stamp, commit and stream one trade of ``symbol``; the trade and its sequence."""
        assert self._conn is not None
        trade = self._next_trade(symbol)
        async with self._conn.transaction():
            await self._conn.execute(
                INSERT_SQL,
                (
                    trade.symbol,
                    trade.trade_id,
                    dt_from_ms(trade.ts_ms),
                    trade.price,
                    trade.quantity,
                ),
            )
            event = trade_event(trade, trade.ts_ms)
            seq = await append_events(self._conn, [event])
        async with self._changed:
            assert seq == len(self._events) + 1
            self._events.append(wrap_event(seq, symbol, event.type_name, event.payload, 0))
            self._changed.notify_all()
        self.trades.append(trade)
        self.sequences.append(seq)
        return trade, seq

    async def events_from(self, seq: int) -> AsyncIterator[events_pb2.Event]:
        """Every event from ``seq`` on, waiting for new ones forever."""
        seq = max(1, seq)
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(_has, self._events, seq))
                ready = self._events[seq - 1 :]
            for event in ready:
                yield event
            seq += len(ready)


def _has(events: list[events_pb2.Event], seq: int) -> bool:
    return len(events) >= seq


class _StreamEvents(processor_pb2_grpc.ProcessorServiceServicer):
    def __init__(self, source: FakeEventSource) -> None:
        self._source = source

    async def StreamEvents(
        self, request: processor_pb2.StreamEventsRequest, context: Any
    ) -> AsyncIterator[processor_pb2.StreamEventsResponse]:
        async for event in self._source.events_from(request.from_sequence):
            yield processor_pb2.StreamEventsResponse(event=event)


async def steady(
    source: FakeEventSource, symbols: Sequence[str], rate: float, duration_s: float
) -> dict[str, int]:
    """Emit ``rate`` trades/s, alternating ``symbols``, for ``duration_s``; last sequence by
    symbol."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    last: dict[str, int] = {}
    for n in range(int(rate * duration_s)):
        delay = began + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        symbol = symbols[n % len(symbols)]
        _, last[symbol] = await source.emit(symbol)
    return last


async def obey(source: FakeEventSource, line: str) -> str:
    """Run one stdin command (see the module docstring); its reply line."""
    command, *args = line.split()
    if command == "emit":
        for symbol in args[0].split(","):
            await source.emit(symbol)
        return str(source.head)
    if command == "steady":
        began = time.monotonic()
        last = await steady(source, args[2].split(","), float(args[0]), float(args[1]))
        return json.dumps({"last": last, "emit_s": time.monotonic() - began})
    if command == "trades":
        start = int(args[0])
        return json.dumps(
            [
                [t.symbol, t.trade_id, t.ts_ms, str(t.price), str(t.quantity), seq]
                for t, seq in zip(source.trades[start:], source.sequences[start:], strict=True)
            ]
        )
    raise ValueError(f"unknown command {line!r}")


async def serve(database_url: str, seed: int) -> None:
    """Serve StreamEvents and obey stdin until it closes."""
    async with FakeEventSource(database_url, seed=seed) as source:
        print(f"listening {source.address}", flush=True)
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            print(await obey(source, line), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.database_url, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
