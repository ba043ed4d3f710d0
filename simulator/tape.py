"""Pure, seeded generation of a realistic trade tape in simulated time.

The tape of a ticker is a deterministic sequence of trades whose timestamps are
`start_ms + offset`, where the offsets depend only on the seed, the ticker and the
`TapeParams`: the same seed gives the same tape whatever the wall-clock scheduling. The
server merely releases trades as wall-clock time passes (`advance_to(now_ms)`).

Model (per ticker, independent RNG `Random(f"{seed}/tape/{ticker}")`):

* events arrive as a Poisson process in integer microseconds; each event is a cluster of
  trades sharing one millisecond (size 1, or with probability `cluster_rate` uniform in
  `[2, cluster_max]`); the event rate is scaled so the mean trade rate is `rate`;
* bursts (Poisson, `burst_rate` per second) multiply the event rate by `burst_factor` for
  `burst_ms`;
* the price is a random walk in integer ticks (`price = ticks * price_tick`) with mild mean
  reversion; trades within one cluster sweep the book in one direction;
* quantities are integer multiples of `qty_step`, log-normal around `typical_qty`, often
  rounded to two significant digits;
* tradeIds increase, mostly by 1, sometimes by 2-20 (the skipped ids are "holes" that are
  never true trades and are used for phantom trades); the first is `start_ms * 1000` plus a
  seeded offset below 1000, so a tape started later never reuses an earlier tape's ids (as a
  real exchange's ids keep increasing across our restarts), up to 1,000 ids per millisecond;
* with probability `string_number_rate` price / quantity are JSON strings in the frame.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Protocol

from simulator.trade import Trade, encode_frame


@dataclass(frozen=True, slots=True)
class TickerSpec:
    """Market microstructure of one ticker."""

    ticker: str
    start_price: Decimal
    price_tick: Decimal
    qty_step: Decimal
    typical_qty: Decimal
    volatility_ticks: float

    def __post_init__(self) -> None:
        for name in ("start_price", "price_tick", "qty_step", "typical_qty"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.start_price % self.price_tick != 0:
            raise ValueError("start_price must be a multiple of price_tick")


def _spec(ticker: str, price: str, tick: str, step: str, typical: str, vol: float) -> TickerSpec:
    return TickerSpec(ticker, Decimal(price), Decimal(tick), Decimal(step), Decimal(typical), vol)


DEFAULT_SPECS: dict[str, TickerSpec] = {
    spec.ticker: spec
    for spec in (
        _spec("BTC", "27000.00", "0.01", "0.00000001", "0.05", 25.0),
        _spec("ETH", "1800.00", "0.01", "0.0001", "0.8", 4.0),
        _spec("SOL", "21.000", "0.001", "0.01", "15", 3.0),
        _spec("XRP", "0.5000", "0.0001", "0.1", "900", 1.0),
        _spec("DOGE", "0.07000", "0.00001", "1", "5000", 1.0),
        _spec("ADA", "0.3500", "0.0001", "0.1", "800", 1.0),
        _spec("LTC", "85.00", "0.01", "0.001", "3", 2.0),
        _spec("BNB", "310.0", "0.1", "0.001", "2", 1.5),
    )
}


def spec_for(ticker: str) -> TickerSpec:
    """The spec of a known ticker, or a generic one (100.00, tick 0.01, qty step 0.0001)."""
    spec = DEFAULT_SPECS.get(ticker)
    if spec is not None:
        return spec
    return _spec(ticker, "100.00", "0.01", "0.0001", "2", 3.0)


@dataclass(frozen=True, slots=True)
class TapeParams:
    """Rates shaping the tape (per ticker)."""

    rate: float = 5.0
    cluster_rate: float = 0.1
    cluster_max: int = 6
    burst_rate: float = 0.02
    burst_factor: float = 8.0
    burst_ms: int = 1500
    string_number_rate: float = 0.02

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be > 0")
        for name in ("cluster_rate", "string_number_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.cluster_max < 2:
            raise ValueError("cluster_max must be >= 2")
        if self.burst_rate < 0 or self.burst_factor < 1 or self.burst_ms < 0:
            raise ValueError("burst_rate >= 0, burst_factor >= 1 and burst_ms >= 0 required")

    @property
    def mean_cluster_size(self) -> float:
        """Expected number of trades per event."""
        return (1.0 - self.cluster_rate) + self.cluster_rate * (2 + self.cluster_max) / 2.0


def _fixed_point(units: int, decimals: int) -> str:
    """Text of `units * 10**-decimals` with exactly `decimals` decimals."""
    if decimals == 0:
        return str(units)
    whole, frac = divmod(units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


def _scaled(step: Decimal) -> tuple[int, int]:
    """`step` as (integer units, decimals) with step == units * 10**-decimals."""
    _, digits, exponent = step.as_tuple()
    assert isinstance(exponent, int)
    units = int("".join(map(str, digits)))
    if exponent >= 0:
        return units * 10**exponent, 0
    return units, -exponent


def _trim(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class TickerTape:
    """The deterministic tape of one ticker, released in timestamp order."""

    def __init__(self, spec: TickerSpec, params: TapeParams, seed: int, start_ms: int) -> None:
        self.spec = spec
        self.params = params
        self.start_ms = start_ms
        self._rng = random.Random(f"{seed}/tape/{spec.ticker}")
        rng = self._rng
        self._tick_units, self._price_decimals = _scaled(spec.price_tick)
        self._qty_units, self._qty_decimals = _scaled(spec.qty_step)
        self._start_ticks = int(spec.start_price / spec.price_tick)
        self._ticks = self._start_ticks
        self._min_ticks = max(1, self._start_ticks // 4)
        self._qty_log_median = math.log(float(spec.typical_qty / spec.qty_step))
        self._next_id = max(0, start_ms) * 1000 + rng.randrange(1000)
        self._hole = self._next_id - 1
        self._event_rate_us = params.rate / params.mean_cluster_size / 1e6
        self._burst_rate_us = params.burst_rate / 1e6
        self._burst_end_us = -1
        self._next_burst_us = self._draw_burst_gap(0)
        self._t_us = 0
        self._next_event_us = self._draw_event_gap(0)

    def _draw_burst_gap(self, now_us: int) -> int:
        if self._burst_rate_us <= 0:
            return 1 << 62
        return now_us + 1 + int(self._rng.expovariate(self._burst_rate_us))

    def _draw_event_gap(self, now_us: int) -> int:
        rate = self._event_rate_us
        if now_us < self._burst_end_us:
            rate *= self.params.burst_factor
        return now_us + 1 + int(self._rng.expovariate(rate))

    def _cluster_size(self) -> int:
        params = self.params
        if params.cluster_rate > 0 and self._rng.random() < params.cluster_rate:
            return self._rng.randint(2, params.cluster_max)
        return 1

    def _quantity_text(self) -> str:
        rng = self._rng
        units = max(1, int(rng.lognormvariate(self._qty_log_median, 1.1)))
        if units >= 100 and rng.random() < 0.35:
            magnitude = 10 ** (len(str(units)) - 2)
            units = max(magnitude, round(units / magnitude) * magnitude)
        return _trim(_fixed_point(units * self._qty_units, self._qty_decimals))

    def _emit_cluster(self, ts: int, out: list[Trade]) -> None:
        rng = self._rng
        spec = self.spec
        size = self._cluster_size()
        direction = 1 if rng.random() < 0.5 else -1
        for index in range(size):
            if index == 0:
                reversion = (self._start_ticks - self._ticks) * 0.002
                step = round(rng.gauss(reversion, spec.volatility_ticks))
            else:
                step = direction if rng.random() < 0.3 else 0
            self._ticks = max(self._min_ticks, self._ticks + step)
            if rng.random() < 0.1:
                gap = rng.randint(2, 20)
                self._hole = self._next_id + gap - 2
                self._next_id += gap - 1
            trade_id = self._next_id
            self._next_id += 1
            price_text = _fixed_point(self._ticks * self._tick_units, self._price_decimals)
            quantity_text = self._quantity_text()
            as_string = self.params.string_number_rate
            price_str = as_string > 0 and rng.random() < as_string
            quantity_str = as_string > 0 and rng.random() < as_string
            frame = encode_frame(
                spec.ticker,
                ts,
                trade_id,
                price_text,
                quantity_text,
                price_as_string=price_str,
                quantity_as_string=quantity_str,
            )
            out.append(
                Trade(
                    spec.ticker,
                    ts,
                    trade_id,
                    Decimal(price_text),
                    Decimal(quantity_text),
                    frame,
                    self._hole,
                )
            )

    def advance_to(self, now_ms: int) -> list[Trade]:
        """All trades not yet released whose timestamp is <= `now_ms`, in (ts, tradeId) order."""
        out: list[Trade] = []
        limit_us = (now_ms - self.start_ms + 1) * 1000
        while self._next_event_us < limit_us:
            event_us = self._next_event_us
            while self._next_burst_us <= event_us:
                self._burst_end_us = self._next_burst_us + self.params.burst_ms * 1000
                self._next_burst_us = self._draw_burst_gap(self._next_burst_us)
            self._emit_cluster(self.start_ms + event_us // 1000, out)
            self._next_event_us = self._draw_event_gap(event_us)
        return out


class TradeSource(Protocol):
    """Anything that releases true trades as time passes."""

    @property
    def tickers(self) -> tuple[str, ...]: ...

    def advance_to(self, now_ms: int) -> list[Trade]:
        """Trades not yet released with ts <= now_ms, sorted by ts."""
        ...


_BY_TS = attrgetter("ts")


class Tape:
    """Generated tapes of several tickers merged by timestamp."""

    def __init__(
        self,
        tickers: Sequence[str],
        params: TapeParams,
        seed: int,
        start_ms: int,
        specs: dict[str, TickerSpec] | None = None,
    ) -> None:
        specs = specs or {}
        self._tapes = [
            TickerTape(specs.get(ticker) or spec_for(ticker), params, seed, start_ms)
            for ticker in tickers
        ]
        self._tickers = tuple(tickers)

    @property
    def tickers(self) -> tuple[str, ...]:
        """The tickers of the tape, in configuration order."""
        return self._tickers

    def advance_to(self, now_ms: int) -> list[Trade]:
        """Trades of all tickers not yet released with ts <= now_ms, merged by ts."""
        parts = [part for part in (tape.advance_to(now_ms) for tape in self._tapes) if part]
        if len(parts) == 1:
            return parts[0]
        return list(heapq.merge(*parts, key=_BY_TS))


def generate(
    ticker: str, params: TapeParams, seed: int, start_ms: int, duration_ms: int
) -> list[Trade]:
    """The tape of one ticker over `[start_ms, start_ms + duration_ms)` (convenience, pure)."""
    return TickerTape(spec_for(ticker), params, seed, start_ms).advance_to(
        start_ms + duration_ms - 1
    )
