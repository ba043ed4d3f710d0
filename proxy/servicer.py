"""The gRPC face of the proxy: protobuf in, domain calls, protobuf out, errors to status codes.

No logic lives here; :class:`proxy.service.ProxyService` does the work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from trading.v1 import proxy_pb2, proxy_pb2_grpc

from proxy.errors import (
    InvalidWindowRequest,
    PagingStuck,
    ProviderBadRequest,
    ProviderRejected,
    UnknownSymbol,
)
from proxy.service import ProxyService
from proxy.stats import FetchProgress, Outcome, StatsSnapshot
from proxy.window_fetch import PageFetched, WindowEvent
from tradekit.domain import TimeWindow
from tradekit.grpc_server import ServiceRegistration
from tradekit.wire import (
    WireError,
    symbol_from_proto,
    timestamp_from_ms,
    trade_to_proto,
    window_from_request,
)

Context = grpc.aio.ServicerContext[Any, Any]


def progress_to_proto(progress: FetchProgress) -> proxy_pb2.FetchProgress:
    """The protobuf form of a window's progress."""
    return proxy_pb2.FetchProgress(
        pages=progress.pages,
        attempts=progress.attempts,
        retries=progress.retries,
        hedges=progress.hedges,
        cursor=timestamp_from_ms(progress.cursor_ms),
        trades=progress.trades,
    )


def event_to_proto(event: WindowEvent) -> proxy_pb2.FetchTradesResponse:
    """One stream message: a page, or the completion."""
    progress = progress_to_proto(event.progress)
    if isinstance(event, PageFetched):
        page = proxy_pb2.TradePage(
            trades=[trade_to_proto(t) for t in event.trades], progress=progress
        )
        return proxy_pb2.FetchTradesResponse(page=page)
    complete = proxy_pb2.WindowComplete(total_trades=event.progress.trades, progress=progress)
    return proxy_pb2.FetchTradesResponse(complete=complete)


def _duration(seconds: float | None) -> Duration:
    duration = Duration()
    if seconds is not None:
        duration.FromNanoseconds(round(seconds * 1_000_000_000))
    return duration


def stats_to_proto(stats: StatsSnapshot) -> proxy_pb2.GetStatsResponse:
    """The protobuf form of the counters (malformed 200s count as server errors)."""
    return proxy_pb2.GetStatsResponse(
        requests=stats.requests,
        succeeded=stats.count(Outcome.SUCCEEDED),
        timeouts=stats.count(Outcome.TIMEOUT),
        server_errors=stats.count(Outcome.SERVER_ERROR) + stats.count(Outcome.MALFORMED),
        rate_limited=stats.count(Outcome.RATE_LIMITED),
        connection_errors=stats.count(Outcome.CONNECTION_ERROR),
        not_found=stats.count(Outcome.NOT_FOUND),
        cancelled=stats.count(Outcome.CANCELLED),
        retries=stats.retries,
        hedges=stats.hedges,
        hedges_won=stats.hedges_won,
        windows_completed=stats.windows_completed,
        windows_in_flight=stats.windows_in_flight,
        trades_streamed=stats.trades_streamed,
        latency_p50=_duration(stats.latency_p50_s),
        latency_p95=_duration(stats.latency_p95_s),
        latency_p99=_duration(stats.latency_p99_s),
        attempt_timeout=_duration(stats.attempt_timeout_s),
    )


def request_window(request: proxy_pb2.FetchTradesRequest) -> tuple[str, TimeWindow]:
    """The symbol and window of a request; WireError says what to change."""
    symbol = symbol_from_proto(request.symbol)
    window = window_from_request(request)
    if window.start_ms < 0:
        raise WireError("start_time must not be before 1970-01-01T00:00:00Z")
    return symbol, window


class ProxyServicer(proxy_pb2_grpc.ProxyServiceServicer):
    """``trading.v1.ProxyService`` over a :class:`ProxyService`."""

    def __init__(self, service: ProxyService) -> None:
        self._service = service

    async def FetchTrades(
        self, request: proxy_pb2.FetchTradesRequest, context: Context
    ) -> AsyncIterator[proxy_pb2.FetchTradesResponse]:
        """Stream the window's pages, then its completion."""
        try:
            symbol, window = request_window(request)
            self._service.check_window(window)
        except (WireError, InvalidWindowRequest) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            async with aclosing(self._service.fetch_window(symbol, window)) as events:
                async for event in events:
                    yield event_to_proto(event)
        except UnknownSymbol as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown symbol {symbol!r}: {exc}")
        except ProviderBadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except PagingStuck as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ProviderRejected as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))

    async def GetStats(
        self, request: proxy_pb2.GetStatsRequest, context: Context
    ) -> proxy_pb2.GetStatsResponse:
        """The counters since start."""
        return stats_to_proto(self._service.stats())


def registration(service: ProxyService) -> ServiceRegistration:
    """The proxy's gRPC service, ready for :class:`tradekit.grpc_server.GrpcServer`."""
    servicer = ProxyServicer(service)

    def add_to_server(server: grpc.aio.Server) -> None:
        proxy_pb2_grpc.add_ProxyServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]

    return ServiceRegistration(
        full_name=proxy_pb2.DESCRIPTOR.services_by_name["ProxyService"].full_name,
        add_to_server=add_to_server,
    )
