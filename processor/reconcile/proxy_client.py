"""Fetch one window of REST's trades through ``ProxyService.FetchTrades``.

The proxy retries the provider until the window is complete and streams each page as it
arrives; this client collects the pages, waits at most ``page_wait_ms`` for each message (a
window's pages come one after another, so a busy window takes longer than any fixed total
deadline: a total of 60 s never let a window of ~8,000 trades from a flaky provider finish),
checks the final ``WindowComplete.total_trades`` against what arrived and that every trade
belongs to the window, and maps gRPC status codes onto :mod:`processor.reconcile.errors`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import grpc
from trading.v1 import proxy_pb2, proxy_pb2_grpc

from processor.reconcile.errors import (
    IncompleteWindow,
    InvalidWindow,
    ProviderUnknownSymbol,
    ProxyContractBroken,
    UnlistableWindow,
    WindowFetchFailed,
)
from tradekit.channels import service_channel
from tradekit.domain import TimeWindow, Trade
from tradekit.wire import WireError, timestamp_from_ms, trade_from_proto

_REJECTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}


def _check(symbol: str, window: TimeWindow, trades: list[Trade], total: int) -> list[Trade]:
    if total != len(trades):
        raise IncompleteWindow(
            f"{symbol} {window}: proxy announced {total} trades but streamed {len(trades)}"
        )
    ids = {t.trade_id for t in trades}
    if len(ids) != len(trades):
        raise ProxyContractBroken(f"{symbol} {window}: proxy streamed a trade id twice")
    for trade in trades:
        if trade.symbol != symbol or not window.contains(trade.ts_ms):
            raise ProxyContractBroken(
                f"{symbol} {window}: proxy streamed {trade.symbol}/{trade.trade_id} "
                f"at {trade.ts_ms}, outside the request"
            )
    return trades


class ProxyClient:
    """A channel to the proxy; ``async with ProxyClient(address=...) as client``."""

    def __init__(self, *, address: str, page_wait_ms: int = 60_000) -> None:
        self._address = address
        self._page_wait_s = page_wait_ms / 1000
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> ProxyClient:
        self._channel = service_channel(self._address)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; idempotent."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close(None)

    async def fetch_window(self, symbol: str, window: TimeWindow) -> list[Trade]:
        """REST's trades of ``symbol`` in ``window``, each once, in the proxy's order."""
        if self._channel is None:
            raise RuntimeError("ProxyClient used outside its async with block")
        stub = proxy_pb2_grpc.ProxyServiceStub(self._channel)  # type: ignore[no-untyped-call]
        request = proxy_pb2.FetchTradesRequest(
            symbol=symbol,
            start_time=timestamp_from_ms(window.start_ms),
            end_time=timestamp_from_ms(window.end_ms),
        )
        trades: list[Trade] = []
        call = stub.FetchTrades(request)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._page_wait_s):
                        response = await call.read()
                except TimeoutError:
                    raise WindowFetchFailed(
                        f"{symbol} {window}: no page from the proxy for {self._page_wait_s:g} s"
                        f" ({len(trades)} trades so far)"
                    ) from None
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]
                    break
                if response.HasField("page"):
                    trades.extend(trade_from_proto(t) for t in response.page.trades)
                elif response.HasField("complete"):
                    return _check(symbol, window, trades, response.complete.total_trades)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code is grpc.StatusCode.NOT_FOUND:
                raise ProviderUnknownSymbol(f"{symbol}: {details}") from exc
            if code is grpc.StatusCode.FAILED_PRECONDITION:
                raise UnlistableWindow(f"{symbol} {window}: {details}") from exc
            if code in _REJECTED:
                raise InvalidWindow(f"{symbol} {window}: {code.name}: {details}") from exc
            raise WindowFetchFailed(f"{symbol} {window}: {code.name}: {details}") from exc
        except WireError as exc:
            raise ProxyContractBroken(f"{symbol} {window}: proxy sent a bad trade: {exc}") from exc
        finally:
            call.cancel()  # a no-op once the call ended; stops the proxy's work otherwise
        raise IncompleteWindow(f"{symbol} {window}: stream ended without WindowComplete")
