"""The VWAP service's logic between the gRPC layer and storage: validation, the cache, series.

Times are epoch milliseconds, money Decimal; no protobuf here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tradekit.domain import TimeWindow
from tradekit.timetext import human_ms
from tradekit.wire import MIN_TIMESTAMP_MS
from vwap.batching import WindowBatcher
from vwap.cache import VwapCache
from vwap.errors import InvalidRequest, UnknownSymbol
from vwap.events import DomainEvent, EventsLost, TradeArrived, TradeCorrected, WindowVerified
from vwap.paging import decode_token, encode_token, page_size
from vwap.points import VwapPoint, is_verified
from vwap.ranges import plan_pieces
from vwap.series import series_end_times, series_plan, series_sums
from vwap.storage import StoredTrade, SymbolSummary, VwapStore


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _check_start(start_ms: int, *, time_field: str = "end_time") -> None:
    """InvalidRequest when a window would start before year 1 (no timestamp can say when);
    the message names ``time_field``, the request's time that sets the window's end."""
    if start_ms < MIN_TIMESTAMP_MS:
        raise InvalidRequest(
            f"the window would start before 0001-01-01T00:00:00Z: use a later {time_field}"
            " or a shorter window"
        )


def _unknown(symbol: str) -> UnknownSymbol:
    return UnknownSymbol(
        f"symbol {symbol} has no trades: ListSymbols lists the symbols with trades"
    )


def _verified(
    start_ms: int, end_ms: int, verified_until_ms: int | None, verified_from_ms: int | None
) -> bool:
    """Whether ``[start, end)`` lies in the symbol's verified range."""
    return is_verified(start_ms, end_ms, verified_until_ms, verified_from_ms)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on requests."""

    max_window_ms: int
    max_series_points: int
    cache_min_age_ms: int


class VwapService:
    """Answers VWAP, series, trades and symbol queries from the store and the cache."""

    def __init__(
        self,
        store: VwapStore,
        cache: VwapCache,
        limits: Limits,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        batcher: WindowBatcher | None = None,
    ) -> None:
        self._store = store
        self._batcher = batcher
        self.cache = cache
        self._limits = limits
        self.clock = clock

    def check_window(self, window_ms: int, *, name: str = "window") -> None:
        """InvalidRequest unless ``0 < window_ms <= max``."""
        if window_ms <= 0:
            raise InvalidRequest(f"{name} must be positive, got {window_ms} ms")
        if window_ms > self._limits.max_window_ms:
            raise InvalidRequest(
                f"{name} must be at most {self._limits.max_window_ms} ms"
                f" ({human_ms(self._limits.max_window_ms)}), got {window_ms} ms"
                f" ({human_ms(window_ms)}): "
                "use a shorter window"
            )

    async def vwap(
        self, symbol: str, end_ms: int, window_ms: int, *, timeout_ms: int | None = None
    ) -> VwapPoint:
        """The point over ``[end - window, end)``; cached once the window is closed."""
        self.check_window(window_ms)
        _check_start(end_ms - window_ms)
        cacheable = end_ms <= self.clock() - self._limits.cache_min_age_ms
        if cacheable:
            cached = self.cache.get((symbol, end_ms, window_ms))
            if cached is not None:
                return cached
        token = self.cache.token(symbol)
        pieces = plan_pieces(end_ms - window_ms, end_ms)
        try:
            if self._batcher is not None:
                read = await self._batcher.read(symbol, pieces, timeout_ms=timeout_ms)
            else:
                read = await self._store.window(symbol, pieces, timeout_ms=timeout_ms)
        except psycopg.DataError as exc:
            raise InvalidRequest(
                f"the window [{end_ms - window_ms}, {end_ms}) ms since the epoch cannot be "
                f"read ({exc.diag.message_primary or exc}): use times between years 1 and 9999"
            ) from exc
        if not read.known:
            raise _unknown(symbol)
        point = VwapPoint(
            symbol,
            end_ms,
            window_ms,
            read.sums,
            _verified(end_ms - window_ms, end_ms, read.verified_until_ms, read.verified_from_ms),
        )
        if cacheable:
            self.cache.put(point, token)
        return point

    async def series(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        *,
        step_ms: int,
        window_ms: int,
        timeout_ms: int | None = None,
    ) -> list[VwapPoint]:
        """Points at ``start, start + step, ... <= end``, each over ``[E - window, E)``."""
        self.check_window(window_ms)
        ends = series_end_times(start_ms, end_ms, step_ms, self._limits.max_series_points)
        _check_start(ends[0] - window_ms, time_field="start_time")
        # Planning and summing up to the limit's points take a good part of a second of CPU:
        # in a worker thread, the event loop keeps serving every other call meanwhile (it
        # stalled for that long, and each concurrent series added as much).
        plan = await asyncio.to_thread(series_plan, ends, window_ms)
        atoms, known, verified_until, verified_from = await self._store.atoms(
            symbol, plan.pieces, timeout_ms=timeout_ms
        )
        if not known:
            raise _unknown(symbol)
        sums = await asyncio.to_thread(series_sums, ends, window_ms, plan, atoms)
        return [
            VwapPoint(
                symbol, e, window_ms, s, _verified(e - window_ms, e, verified_until, verified_from)
            )
            for e, s in zip(ends, sums, strict=True)
        ]

    async def trades(
        self,
        symbol: str,
        window: TimeWindow,
        *,
        requested_page_size: int,
        page_token: str,
        timeout_ms: int | None = None,
    ) -> tuple[list[StoredTrade], str]:
        """One page of trades in ``window`` and the token of the next page ("" at the end)."""
        size = page_size(requested_page_size)
        after = decode_token(page_token, symbol, window.start_ms, window.end_ms)
        rows, known = await self._store.trades(
            symbol,
            window.start_ms,
            window.end_ms,
            after=after,
            limit=size + 1,
            timeout_ms=timeout_ms,
        )
        if not known:
            raise _unknown(symbol)
        if len(rows) <= size:
            return rows, ""
        page = rows[:size]
        last = page[-1].trade.sort_key
        return page, encode_token(symbol, window.start_ms, window.end_ms, last)

    async def symbols(self, *, timeout_ms: int | None = None) -> list[SymbolSummary]:
        """Symbols with stored trades."""
        return await self._store.symbols(timeout_ms=timeout_ms)

    def on_event(self, event: DomainEvent) -> None:
        """Invalidate the cache entries an event may have changed."""
        if isinstance(event, TradeArrived):
            self.cache.invalidate_time(event.symbol, event.trade.ts_ms)
        elif isinstance(event, TradeCorrected):
            for trade in (event.old, event.new):
                if trade is not None:
                    self.cache.invalidate_time(event.symbol, trade.ts_ms)
        elif isinstance(event, WindowVerified):
            # Out of order, the watermark may jump past the window: every point up to it flips.
            until = max(event.end_ms, event.verified_until_ms or event.end_ms)
            self.cache.invalidate_verified(event.symbol, until)
        elif isinstance(event, EventsLost):
            self.cache.forget(event.symbol)
