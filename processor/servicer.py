"""Thin gRPC layer of ProcessorService: protobuf ⇄ domain, domain errors → status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from trading.v1 import processor_pb2, processor_pb2_grpc

from processor.db import Pool
from processor.event_stream import follow_events
from processor.events import wrap_event
from processor.head_watch import HeadWatcher
from processor.stats import ProcessorCounters
from tradekit.wire import WireError, symbol_from_proto


class ProcessorServicer(processor_pb2_grpc.ProcessorServiceServicer):
    """Serves the event log, coverage, backfill and counters."""

    def __init__(
        self,
        *,
        pool: Pool,
        watcher: HeadWatcher,
        counters: ProcessorCounters,
        stopping: asyncio.Event,
    ) -> None:
        self._pool = pool
        self._watcher = watcher
        self._counters = counters
        self._stopping = stopping

    async def StreamEvents(
        self,
        request: processor_pb2.StreamEventsRequest,
        context: grpc.aio.ServicerContext[
            processor_pb2.StreamEventsRequest, processor_pb2.StreamEventsResponse
        ],
    ) -> AsyncIterator[processor_pb2.StreamEventsResponse]:
        """Replay from ``from_sequence``, then live."""
        try:
            symbols = sorted({symbol_from_proto(s) for s in request.symbols})
        except WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"symbols: {exc}")
        async for event in follow_events(
            self._pool,
            self._watcher,
            from_seq=request.from_sequence,
            symbols=symbols,
            stopping=self._stopping,
        ):
            yield processor_pb2.StreamEventsResponse(
                event=wrap_event(
                    event.seq, event.symbol, event.type_name, event.payload, event.created_ms
                )
            )

    async def GetProcessorStats(
        self,
        request: processor_pb2.GetProcessorStatsRequest,
        context: grpc.aio.ServicerContext[
            processor_pb2.GetProcessorStatsRequest, processor_pb2.GetProcessorStatsResponse
        ],
    ) -> processor_pb2.GetProcessorStatsResponse:
        """Counters since start."""
        return processor_pb2.GetProcessorStatsResponse(**self._counters.snapshot())
