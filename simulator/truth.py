"""The ground truth: every true trade released so far, and the exact rolling VWAP.

Per ticker, trades are kept as columns of plain values (timestamps, ids, prices,
quantities, frames), in (ts, tradeId) order. Columns of ints / Decimals / bytes are not
tracked by the cyclic GC, so millions of trades cause no GC pauses (Trade objects are
materialized on demand). Memory is roughly 0.5 KB per trade; use retention for long runs.

VWAP semantics: the window ending at `end_ms` of length `window_ms` holds the trades with
`end_ms - window_ms <= ts < end_ms`; notional = sum(price * quantity) and volume =
sum(quantity) are exact (`Decimal` sums in a context that traps any rounding); vwap =
notional / volume computed in `VWAP_CONTEXT` (prec=34, ROUND_HALF_EVEN), or None when the
volume is zero. Exact cumulative sums are checkpointed every `BLOCK` trades, so a window
costs two bisections plus at most 2 * BLOCK multiply-adds.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, Rounded
from itertools import repeat
from pathlib import Path

from simulator.trade import Trade, format_export_line

VWAP_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN)
EXACT_CONTEXT = Context(prec=100_000, traps=[InvalidOperation, Inexact, Rounded])
DEFAULT_WINDOW_MS = 300_000
PAGE_LIMIT = 100
BLOCK = 256
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Vwap:
    """An exact window aggregate."""

    notional: Decimal
    volume: Decimal
    vwap: Decimal | None
    count: int

    def to_json(self) -> dict[str, str | int | None]:
        """JSON-ready form with decimal strings."""
        return {
            "notional": format(self.notional, "f"),
            "volume": format(self.volume, "f"),
            "vwap": None if self.vwap is None else format(self.vwap, "f"),
            "count": self.count,
        }


def vwap_of(notional: Decimal, volume: Decimal, count: int) -> Vwap:
    """Build a `Vwap` from exact sums."""
    vwap = None if volume == 0 else VWAP_CONTEXT.divide(notional, volume)
    return Vwap(notional, volume, vwap, count)


@dataclass(frozen=True, slots=True)
class TruthSlice:
    """A copy of one ticker's columns (for exports outside the event loop)."""

    ticker: str
    timestamps: list[int]
    ids: list[int]
    prices: list[Decimal]
    quantities: list[Decimal]

    def lines(self) -> Iterator[str]:
        """Export lines, each with a trailing newline."""
        for ts, trade_id, price, quantity in zip(
            self.timestamps, self.ids, self.prices, self.quantities, strict=True
        ):
            yield format_export_line(self.ticker, ts, trade_id, price, quantity) + "\n"


class _TickerTruth:
    """Columns of one ticker. Absolute index = list index + `base` (trimmed count)."""

    __slots__ = (
        "base",
        "checkpoints",
        "cp_first",
        "frames",
        "holes",
        "ids",
        "last",
        "prices",
        "quantities",
        "run_notional",
        "run_volume",
        "ticker",
        "timestamps",
    )

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.timestamps: list[int] = []
        self.ids: list[int] = []
        self.prices: list[Decimal] = []
        self.quantities: list[Decimal] = []
        self.frames: list[bytes] = []
        self.holes: list[int] = []
        self.base = 0
        self.run_notional = _ZERO
        self.run_volume = _ZERO
        self.checkpoints: list[tuple[Decimal, Decimal]] = [(_ZERO, _ZERO)]
        self.cp_first = 0
        self.last: tuple[int, int] | None = None

    def add(self, trade: Trade) -> None:
        key = (trade.ts, trade.trade_id)
        if self.last is not None and key <= self.last:
            raise ValueError(f"{trade.ticker}: trade {key} is not after {self.last}")
        self.last = key
        ctx = EXACT_CONTEXT
        self.timestamps.append(trade.ts)
        self.ids.append(trade.trade_id)
        self.prices.append(trade.price)
        self.quantities.append(trade.quantity)
        self.frames.append(trade.frame)
        self.holes.append(trade.hole)
        self.run_notional = ctx.add(self.run_notional, ctx.multiply(trade.price, trade.quantity))
        self.run_volume = ctx.add(self.run_volume, trade.quantity)
        if (self.base + len(self.timestamps)) % BLOCK == 0:
            self.checkpoints.append((self.run_notional, self.run_volume))

    def span(self, start_ms: int, end_ms: int | None) -> tuple[int, int]:
        lo = bisect_left(self.timestamps, start_ms)
        hi = len(self.timestamps) if end_ms is None else bisect_left(self.timestamps, end_ms)
        return lo, max(lo, hi)

    def prefix(self, index: int) -> tuple[Decimal, Decimal]:
        """Exact sums over the retained trades before list index `index` (plus trimmed)."""
        absolute = self.base + index
        block = absolute // BLOCK
        notional, volume = self.checkpoints[block - self.cp_first]
        ctx = EXACT_CONTEXT
        prices, quantities = self.prices, self.quantities
        for i in range(block * BLOCK - self.base, index):
            notional = ctx.add(notional, ctx.multiply(prices[i], quantities[i]))
            volume = ctx.add(volume, quantities[i])
        return notional, volume

    def slice(self, lo: int, hi: int) -> list[Trade]:
        return list(
            map(
                Trade,
                repeat(self.ticker, hi - lo),
                self.timestamps[lo:hi],
                self.ids[lo:hi],
                self.prices[lo:hi],
                self.quantities[lo:hi],
                self.frames[lo:hi],
                self.holes[lo:hi],
            )
        )

    def trim_before(self, ts: int) -> int:
        """Drop trades older than `ts`, down to a checkpoint boundary (keeps sums exact)."""
        cut = bisect_left(self.timestamps, ts)
        boundary = (self.base + cut) // BLOCK * BLOCK
        count = boundary - self.base
        if count <= 0:
            return 0
        for column in (
            self.timestamps,
            self.ids,
            self.prices,
            self.quantities,
            self.frames,
            self.holes,
        ):
            del column[:count]
        del self.checkpoints[: boundary // BLOCK - self.cp_first]
        self.cp_first = boundary // BLOCK
        self.base = boundary
        return count

    def copy(self) -> TruthSlice:
        return TruthSlice(
            self.ticker,
            list(self.timestamps),
            list(self.ids),
            list(self.prices),
            list(self.quantities),
        )


class TruthStore:
    """All true trades released so far, per ticker."""

    def __init__(self, tickers: Sequence[str]) -> None:
        self._tickers = tuple(tickers)
        self._by_ticker = {ticker: _TickerTruth(ticker) for ticker in self._tickers}

    @property
    def tickers(self) -> tuple[str, ...]:
        """Known tickers."""
        return self._tickers

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._by_ticker

    def add(self, trades: Iterable[Trade]) -> None:
        """Append trades; per ticker they must come in strictly increasing (ts, tradeId)."""
        by_ticker = self._by_ticker
        for trade in trades:
            by_ticker[trade.ticker].add(trade)

    def count(self, ticker: str) -> int:
        """Number of retained trades of `ticker`."""
        return len(self._by_ticker[ticker].timestamps)

    def trades(self, ticker: str, start_ms: int = 0, end_ms: int | None = None) -> list[Trade]:
        """Trades with `start_ms <= ts < end_ms` (no end: all), sorted by (ts, tradeId)."""
        truth = self._by_ticker[ticker]
        return truth.slice(*truth.span(start_ms, end_ms))

    def page(
        self,
        ticker: str,
        start_ms: int,
        end_ms: int | None,
        visible_until_ms: int,
        limit: int = PAGE_LIMIT,
    ) -> list[Trade]:
        """The REST page: first `limit` trades with start <= ts < end and ts <= visible_until."""
        bound = visible_until_ms + 1 if end_ms is None else min(end_ms, visible_until_ms + 1)
        truth = self._by_ticker[ticker]
        lo, hi = truth.span(start_ms, bound)
        return truth.slice(lo, min(hi, lo + limit))

    def vwap(self, ticker: str, end_ms: int, window_ms: int = DEFAULT_WINDOW_MS) -> Vwap:
        """Exact aggregate of the trades with `end_ms - window_ms <= ts < end_ms`."""
        if window_ms <= 0:
            raise ValueError("window_ms must be > 0")
        truth = self._by_ticker[ticker]
        lo, hi = truth.span(end_ms - window_ms, end_ms)
        notional_lo, volume_lo = truth.prefix(lo)
        notional_hi, volume_hi = truth.prefix(hi)
        ctx = EXACT_CONTEXT
        return vwap_of(
            ctx.subtract(notional_hi, notional_lo), ctx.subtract(volume_hi, volume_lo), hi - lo
        )

    def trim_before(self, ts: int) -> int:
        """Forget trades older than `ts` (retention, rounded down to a block of 256 trades);
        returns how many were dropped."""
        return sum(truth.trim_before(ts) for truth in self._by_ticker.values())

    def snapshot(self, tickers: Sequence[str] | None = None) -> list[TruthSlice]:
        """A copy of the selected tickers' trades, safe to write from another thread."""
        return [self._by_ticker[ticker].copy() for ticker in tickers or self._tickers]

    def export_lines(self, tickers: Sequence[str] | None = None) -> Iterator[str]:
        """Export lines (with newline) of the selected tickers, ticker by ticker."""
        for part in self.snapshot(tickers):
            yield from part.lines()

    def export_jsonl(self, path: Path, tickers: Sequence[str] | None = None) -> int:
        """Write the truth as JSON lines; returns the number of trades written."""
        return write_jsonl(path, self.snapshot(tickers))


def write_jsonl(path: Path, parts: Iterable[TruthSlice]) -> int:
    """Write export lines atomically (temp file + rename); returns the count."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for part in parts:
            for line in part.lines():
                handle.write(line)
                count += 1
    os.replace(tmp, path)
    return count
