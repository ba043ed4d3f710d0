"""Thin gRPC layer of ProcessorService: protobuf ⇄ domain, domain errors → status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import psycopg
from trading.v1 import processor_pb2, processor_pb2_grpc

from processor.db import Pool
from processor.event_stream import ForeignPosition, follow_events
from processor.events import wrap_event
from processor.head_watch import HeadWatcher
from processor.reconcile.errors import (
    ProviderUnknownSymbol,
    ProxyContractBroken,
    RangeBeforeEpoch,
    RangeNotSettled,
    RangeTooLarge,
    ReconcileError,
    UnlistableWindow,
    WindowRejected,
)
from processor.reconcile.scheduler import Reconciler
from processor.stats import ProcessorCounters
from tradekit.domain import TimeWindow
from tradekit.logs import event_logger
from tradekit.wire import (
    WireError,
    ms_from_timestamp,
    newest_metadata,
    symbol_from_proto,
    timestamp_from_ms,
    window_from_request,
    window_to_proto,
)

log = event_logger("processor.servicer")

_STATES = {
    "live": processor_pb2.WINDOW_STATE_LIVE,
    "gap": processor_pb2.WINDOW_STATE_GAP,
    "pending": processor_pb2.WINDOW_STATE_PENDING,
    "verified": processor_pb2.WINDOW_STATE_VERIFIED,
}


class ProcessorServicer(processor_pb2_grpc.ProcessorServiceServicer):
    """Serves the event log, coverage, backfill and counters."""

    def __init__(
        self,
        *,
        pool: Pool,
        watcher: HeadWatcher,
        counters: ProcessorCounters,
        stopping: asyncio.Event,
        reconciler: Reconciler,
    ) -> None:
        self._reconciler = reconciler
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
        try:
            last_publish_ms = (
                ms_from_timestamp(request.last_publish_time, field="last_publish_time")
                if request.HasField("last_publish_time")
                else None
            )
        except WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            unknown = await self._reconciler.unknown(symbols)
        except psycopg.OperationalError as exc:
            await _store_away(context, exc, "retry")
        if unknown:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"{', '.join(unknown)} not ingested or reconciled here, so no events (SYMBOLS:"
                f" {', '.join(self._reconciler.symbols)}; a Backfill of it would start them)",
            )
        next_seq = request.from_sequence
        try:
            async for event in follow_events(
                self._pool,
                self._watcher,
                from_seq=request.from_sequence,
                last_publish_ms=last_publish_ms,
                symbols=symbols,
                stopping=self._stopping,
            ):
                yield processor_pb2.StreamEventsResponse(
                    event=wrap_event(
                        event.seq, event.symbol, event.type_name, event.payload, event.created_ms
                    )
                )
                next_seq = event.seq + 1
        except ForeignPosition as exc:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                str(exc),
                trailing_metadata=newest_metadata(exc.head, exc.head_published_ms),
            )
        except psycopg.OperationalError as exc:
            await _store_away(context, exc, f"resume with from_sequence {next_seq}")

    async def GetProcessorStats(
        self,
        request: processor_pb2.GetProcessorStatsRequest,
        context: grpc.aio.ServicerContext[
            processor_pb2.GetProcessorStatsRequest, processor_pb2.GetProcessorStatsResponse
        ],
    ) -> processor_pb2.GetProcessorStatsResponse:
        """Counters since start."""
        return processor_pb2.GetProcessorStatsResponse(**self._counters.snapshot())

    async def GetCoverage(
        self,
        request: processor_pb2.GetCoverageRequest,
        context: grpc.aio.ServicerContext[
            processor_pb2.GetCoverageRequest, processor_pb2.GetCoverageResponse
        ],
    ) -> processor_pb2.GetCoverageResponse:
        """The ledger's windows overlapping a range."""
        symbol, window = await _symbol_and_window(request, context)
        try:
            found = await self._reconciler.coverage(symbol, window)
        except RangeTooLarge as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except psycopg.OperationalError as exc:
            await _store_away(context, exc, "retry")
        if found.verified is None and symbol not in self._reconciler.symbols:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"{symbol} is not reconciled here (SYMBOLS: {', '.join(self._reconciler.symbols)});"
                " a Backfill of it would start its coverage",
            )
        response = processor_pb2.GetCoverageResponse(
            windows=[
                processor_pb2.CoverageWindow(
                    symbol=e.symbol,
                    window=window_to_proto(TimeWindow(e.start_ms, e.end_ms)),
                    state=_STATES[e.state],
                    trade_count=e.trade_count,
                    change_count=e.change_count,
                    updated_time=timestamp_from_ms(e.updated_ms),
                )
                for e in found.entries
            ]
        )
        if found.verified is not None:
            response.verified_until.CopyFrom(timestamp_from_ms(found.verified.until_ms))
            if found.verified.from_ms is not None:
                response.verified_from.CopyFrom(timestamp_from_ms(found.verified.from_ms))
        return response

    async def Backfill(
        self,
        request: processor_pb2.BackfillRequest,
        context: grpc.aio.ServicerContext[
            processor_pb2.BackfillRequest, processor_pb2.BackfillResponse
        ],
    ) -> AsyncIterator[processor_pb2.BackfillResponse]:
        """Reconcile a historic range now, one progress message per window."""
        symbol, window = await _symbol_and_window(request, context)
        try:
            async for progress in self._reconciler.backfill(symbol, window):
                yield processor_pb2.BackfillResponse(
                    windows_total=progress.windows_total,
                    windows_done=progress.windows_done,
                    window=window_to_proto(progress.window),
                    trade_count=progress.trade_count,
                    change_count=progress.change_count,
                    complete=progress.complete,
                )
        except ProviderUnknownSymbol as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except UnlistableWindow as exc:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{exc}; the windows before it were reconciled, the rest of the range was not",
            )
        except ProxyContractBroken as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        except (RangeBeforeEpoch, RangeNotSettled, RangeTooLarge, WindowRejected) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ReconcileError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; retry the backfill")
        except psycopg.OperationalError as exc:
            await _store_away(context, exc, "retry the backfill")


async def _store_away(
    context: grpc.aio.ServicerContext[Any, Any], exc: psycopg.OperationalError, then: str
) -> NoReturn:
    """UNAVAILABLE for a database that is away (connection lost, pool timed out): the call
    can be repeated once it is back; it used to reach the client as UNKNOWN."""
    log.warning("store_unavailable", error=repr(exc))
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"the trade store is unavailable; {then}")


async def _symbol_and_window(
    request: processor_pb2.GetCoverageRequest | processor_pb2.BackfillRequest,
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[str, TimeWindow]:
    try:
        return symbol_from_proto(request.symbol), window_from_request(request)
    except WireError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
