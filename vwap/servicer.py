"""The gRPC face of the VWAP service: protobuf ⇄ domain, errors → status codes, deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import psycopg
from trading.v1 import vwap_pb2, vwap_pb2_grpc

from tradekit.domain import DomainError
from tradekit.grpc_server import ServiceRegistration
from tradekit.logs import event_logger
from tradekit.wire import (
    ms_from_duration,
    ms_from_timestamp,
    required_ms,
    symbol_from_proto,
    timestamp_from_ms,
    window_from_request,
)
from vwap.convert import point_to_proto, stored_trade_to_proto, summary_to_proto
from vwap.errors import (
    DeadlinePassed,
    InvalidRequest,
    LiveCapacityExhausted,
    LiveStateUnavailable,
    UnknownSymbol,
)
from vwap.live import LiveHub
from vwap.outbox import OVERFLOWED, STALLED, Outbox
from vwap.service import VwapService

log = event_logger("vwap.servicer")

DEFAULT_WINDOW_MS = 5 * 60_000
DEFAULT_STEP_MS = 60_000
#: Finest StreamVwap grid: each step closes a point for every subscriber.
MIN_STREAM_STEP_MS = 1_000
#: Longest StreamVwap window and step: the live state of a stream holds the trades of its
#: window and last step in memory (longer windows: GetVwapSeries).
MAX_STREAM_SPAN_MS = 86_400_000

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE_NAME = vwap_pb2.DESCRIPTOR.services_by_name["VwapService"].full_name


async def _abort(context: Context, exc: Exception) -> NoReturn:
    if isinstance(exc, LiveCapacityExhausted):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, UnknownSymbol):
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, InvalidRequest | DomainError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, DeadlinePassed | psycopg.errors.QueryCanceled):
        await context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed during the query"
        )
    log.error("request_failed", error=repr(exc))
    await context.abort(grpc.StatusCode.UNAVAILABLE, "the trade store is unavailable, retry")


_EXPECTED = (UnknownSymbol, InvalidRequest, DeadlinePassed, DomainError, psycopg.Error)


def _timeout_ms(context: Context) -> int | None:
    remaining = context.time_remaining()
    if remaining is None:
        return None
    if remaining <= 0:
        raise DeadlinePassed("the deadline has already passed")
    return max(1, int(remaining * 1000))


def _duration(msg: Any, name: str, default_ms: int) -> int:
    return ms_from_duration(getattr(msg, name), field=name) if msg.HasField(name) else default_ms


def _check_stream_span(window_ms: int, step_ms: int) -> None:
    """InvalidRequest unless the window is at most a day and the step 1 s .. 1 day."""
    if step_ms < MIN_STREAM_STEP_MS:
        raise InvalidRequest(
            f"step must be at least {MIN_STREAM_STEP_MS} ms (a closed point per step goes to"
            f" every subscriber), got {step_ms} ms"
        )
    for name, ms in (("window", window_ms), ("step", step_ms)):
        if ms > MAX_STREAM_SPAN_MS:
            raise InvalidRequest(
                f"{name} must be at most {MAX_STREAM_SPAN_MS} ms (1 day) on StreamVwap, got"
                f" {ms} ms: the live state holds that much history (GetVwapSeries serves"
                " longer windows)"
            )


class VwapServicer(vwap_pb2_grpc.VwapServiceServicer):
    """Implements trading.v1.VwapService over :class:`VwapService` and :class:`LiveHub`."""

    def __init__(self, service: VwapService, hub: LiveHub, *, outbox: Outbox | None = None) -> None:
        self._service = service
        self._hub = hub
        #: Send turns shared by every StreamVwap stream.
        self.outbox = outbox if outbox is not None else Outbox()

    async def GetVwap(
        self, request: vwap_pb2.GetVwapRequest, context: Context
    ) -> vwap_pb2.GetVwapResponse:
        """One VWAP point."""
        try:
            now = self._service.clock()
            symbol = symbol_from_proto(request.symbol)
            end_ms = (
                ms_from_timestamp(request.end_time, field="end_time")
                if request.HasField("end_time")
                else now
            )
            window_ms = _duration(request, "window", DEFAULT_WINDOW_MS)
            point = await self._service.vwap(
                symbol, end_ms, window_ms, timeout_ms=_timeout_ms(context)
            )
        except _EXPECTED as exc:
            await _abort(context, exc)
        return vwap_pb2.GetVwapResponse(point=point_to_proto(point), as_of=timestamp_from_ms(now))

    async def GetVwapSeries(
        self, request: vwap_pb2.GetVwapSeriesRequest, context: Context
    ) -> AsyncIterator[vwap_pb2.GetVwapSeriesResponse]:
        """The rolling series, in time order."""
        try:
            symbol = symbol_from_proto(request.symbol)
            start_ms = required_ms(request, "start_time")
            end_ms = required_ms(request, "end_time")
            points = await self._service.series(
                symbol,
                start_ms,
                end_ms,
                step_ms=_duration(request, "step", DEFAULT_STEP_MS),
                window_ms=_duration(request, "window", DEFAULT_WINDOW_MS),
                timeout_ms=_timeout_ms(context),
            )
        except _EXPECTED as exc:
            await _abort(context, exc)
        for point in points:
            yield vwap_pb2.GetVwapSeriesResponse(point=point_to_proto(point))

    async def StreamVwap(self, request: vwap_pb2.StreamVwapRequest, context: Context) -> None:
        """Live updates, closed points, revisions and verifications, written as pre-serialized
        ``StreamVwapResponse`` bytes (the hub serializes each message once for all its
        subscribers; :func:`registration` passes them through unchanged) by the outbox's
        senders, which share a fixed number of send turns among all streams."""
        try:
            symbols = [symbol_from_proto(s) for s in request.symbols]
            window_ms = _duration(request, "window", DEFAULT_WINDOW_MS)
            step_ms = _duration(request, "step", DEFAULT_STEP_MS)
            _check_stream_span(window_ms, step_ms)  # first: its bound is the tighter one
            self._service.check_window(window_ms)
        except _EXPECTED as exc:
            await _abort(context, exc)
        # Headers first, on their own: a status to end the stream can then always be sent,
        # even while the first message waits on a client that never reads (gRPC refuses a
        # status batch that repeats the headers of a write still in flight).
        await context.send_initial_metadata(())
        try:
            async with self._hub.subscribe(symbols, window_ms=window_ms, step_ms=step_ms) as sub:
                ended = await self.outbox.serve(sub, context.write)
            # Its subscription is gone (queue dropped); gRPC sends the status after the
            # messages it already holds, so a client that stopped reading sees it when it reads.
            if ended == OVERFLOWED:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "the client read too slowly and fell behind; reconnect",
                )
            if ended == STALLED:
                waited = self.outbox.stalled_after_s
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the client read too slowly (a message waited {waited:g} s to be sent);"
                    " reconnect",
                )
            if sub.lost is not None:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the live state missed a change ({sub.lost}); subscribe again",
                )
            if self._hub.closed:  # not the end of the data: a client is to reconnect
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "the VWAP service is stopping; subscribe again (to another instance, or"
                    " once it is back)",
                )
        except (LiveStateUnavailable, psycopg.Error) as exc:
            await _abort(context, exc)

    async def GetTrades(
        self, request: vwap_pb2.GetTradesRequest, context: Context
    ) -> vwap_pb2.GetTradesResponse:
        """One page of stored trades."""
        try:
            symbol = symbol_from_proto(request.symbol)
            window = window_from_request(request)
            trades, token = await self._service.trades(
                symbol,
                window,
                requested_page_size=request.page_size,
                page_token=request.page_token,
                timeout_ms=_timeout_ms(context),
            )
        except _EXPECTED as exc:
            await _abort(context, exc)
        return vwap_pb2.GetTradesResponse(
            trades=[stored_trade_to_proto(t) for t in trades], next_page_token=token
        )

    async def ListSymbols(
        self, request: vwap_pb2.ListSymbolsRequest, context: Context
    ) -> vwap_pb2.ListSymbolsResponse:
        """Symbols with stored trades."""
        try:
            summaries = await self._service.symbols(timeout_ms=_timeout_ms(context))
        except _EXPECTED as exc:
            await _abort(context, exc)
        return vwap_pb2.ListSymbolsResponse(symbols=[summary_to_proto(s) for s in summaries])


def registration(servicer: VwapServicer) -> ServiceRegistration:
    """The ServiceRegistration for GrpcServer."""

    def add(server: grpc.aio.Server) -> None:
        handlers = {
            "GetVwap": grpc.unary_unary_rpc_method_handler(
                servicer.GetVwap,
                request_deserializer=vwap_pb2.GetVwapRequest.FromString,
                response_serializer=vwap_pb2.GetVwapResponse.SerializeToString,
            ),
            "GetVwapSeries": grpc.unary_stream_rpc_method_handler(
                servicer.GetVwapSeries,
                request_deserializer=vwap_pb2.GetVwapSeriesRequest.FromString,
                response_serializer=vwap_pb2.GetVwapSeriesResponse.SerializeToString,
            ),
            # No serializer: grpc writes the bytes the hub serialized once (passthrough).
            "StreamVwap": grpc.unary_stream_rpc_method_handler(
                servicer.StreamVwap,
                request_deserializer=vwap_pb2.StreamVwapRequest.FromString,
                response_serializer=None,
            ),
            "GetTrades": grpc.unary_unary_rpc_method_handler(
                servicer.GetTrades,
                request_deserializer=vwap_pb2.GetTradesRequest.FromString,
                response_serializer=vwap_pb2.GetTradesResponse.SerializeToString,
            ),
            "ListSymbols": grpc.unary_unary_rpc_method_handler(
                servicer.ListSymbols,
                request_deserializer=vwap_pb2.ListSymbolsRequest.FromString,
                response_serializer=vwap_pb2.ListSymbolsResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )
        server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]

    return ServiceRegistration(SERVICE_NAME, add)
