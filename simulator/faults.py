"""Pure, seeded fault plans for the WebSocket stream and the REST endpoint.

Determinism contract ("the same seed gives the same faults"):

* WebSocket: every connection gets its own plan, seeded by `(seed, connection ordinal)`
  (`Random(f"{seed}/ws/{connection}")`, ordinals count accepted connections from 0). The plan
  makes exactly one decision per trade offered to that connection, in offer order, so the
  n-th trade a connection is offered always gets the same decision for a given seed.
* REST: one plan per server, seeded by `seed` (`Random(f"{seed}/rest")`); the n-th
  `/trades` request that passes validation gets the n-th decision.

WebSocket faults are mutually exclusive per trade and their rates are probabilities per
offered trade (their sum must be <= 1):

* `duplicate`    the frame is sent, then sent again (immediately, or `delay` frames later);
* `disconnect`   the frame is sent, then the connection is closed (close frame or TCP abort);
* `malformed`    the frame is replaced by an invalid one (see `Malformed`);
* `out_of_order` the frame is held back and sent `delay` frames later;
* `drop`         the frame is never sent on this connection;
* `wrong_value`  the frame carries a wrong price or quantity (same ticker, ts, tradeId);
* `phantom`      the frame is sent together with a trade that never happened.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum


class WsFault(StrEnum):
    """Kinds of WebSocket faults."""

    DUPLICATE = "duplicate"
    DISCONNECT = "disconnect"
    MALFORMED = "malformed"
    OUT_OF_ORDER = "out_of_order"
    DROP = "drop"
    WRONG_VALUE = "wrong_value"
    PHANTOM = "phantom"


class Malformed(StrEnum):
    """Sub-kinds of malformed frames."""

    NOT_JSON = "not_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_POSITIVE = "non_positive"
    WRONG_TS_UNIT = "wrong_ts_unit"


class Disconnect(StrEnum):
    """How a connection is dropped."""

    CLOSE = "close"
    ABORT = "abort"


ALL_MALFORMED: tuple[tuple[Malformed, float], ...] = tuple((kind, 1.0) for kind in Malformed)


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be within [0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class WsFaultRates:
    """Probability per offered trade of each WebSocket fault."""

    duplicate: float = 0.0
    disconnect: float = 0.0
    malformed: float = 0.0
    out_of_order: float = 0.0
    drop: float = 0.0
    wrong_value: float = 0.0
    phantom: float = 0.0
    malformed_kinds: tuple[tuple[Malformed, float], ...] = ALL_MALFORMED
    max_delay_frames: int = 20

    def __post_init__(self) -> None:
        for kind in WsFault:
            _check_rate(kind.value, self.rate(kind))
        if self.total > 1.0 + 1e-12:
            raise ValueError(f"WebSocket fault rates sum to {self.total} > 1")
        if self.max_delay_frames < 1:
            raise ValueError("max_delay_frames must be >= 1")
        if not self.malformed_kinds or any(w < 0 for _, w in self.malformed_kinds):
            raise ValueError("malformed_kinds needs at least one kind and weights >= 0")
        if sum(w for _, w in self.malformed_kinds) <= 0:
            raise ValueError("malformed_kinds weights must not all be zero")

    def rate(self, kind: WsFault) -> float:
        """The configured rate of one fault kind."""
        value: float = getattr(self, kind.value)
        return value

    @property
    def total(self) -> float:
        """Probability that a trade gets any fault."""
        return sum(self.rate(kind) for kind in WsFault)

    def malformed_share(self, kind: Malformed) -> float:
        """Fraction of malformed frames that are of `kind`."""
        weights = dict(self.malformed_kinds)
        return weights.get(kind, 0.0) / sum(weights.values())


@dataclass(frozen=True, slots=True)
class WsAction:
    """A fault decision for one trade; `variant` picks sub-variants deterministically."""

    fault: WsFault
    delay: int = 0
    malformed: Malformed | None = None
    disconnect: Disconnect | None = None
    variant: int = 0


class WsFaultPlan:
    """Seeded per-connection decisions, one per offered trade (`None` = deliver as is)."""

    def __init__(self, rates: WsFaultRates, seed: int, connection: int) -> None:
        self.rates = rates
        self._rng = random.Random(f"{seed}/ws/{connection}")
        self._total = rates.total
        cumulative: list[tuple[float, WsFault]] = []
        acc = 0.0
        for kind in WsFault:
            rate = rates.rate(kind)
            if rate > 0:
                acc += rate
                cumulative.append((acc, kind))
        self._cumulative = cumulative
        self._malformed_kinds = [k for k, _ in rates.malformed_kinds]
        self._malformed_weights = [w for _, w in rates.malformed_kinds]

    def next(self) -> WsAction | None:
        """The decision for the next offered trade."""
        u = self._rng.random()
        if u >= self._total:
            return None
        fault = self._cumulative[-1][1]
        for bound, kind in self._cumulative:
            if u < bound:
                fault = kind
                break
        return self._detail(fault)

    def _detail(self, fault: WsFault) -> WsAction:
        rng = self._rng
        variant = rng.randrange(1 << 30)
        if fault is WsFault.DUPLICATE:
            delay = 0 if rng.random() < 0.5 else rng.randint(1, self.rates.max_delay_frames)
            return WsAction(fault, delay=delay, variant=variant)
        if fault is WsFault.OUT_OF_ORDER:
            return WsAction(
                fault, delay=rng.randint(1, self.rates.max_delay_frames), variant=variant
            )
        if fault is WsFault.MALFORMED:
            kind = rng.choices(self._malformed_kinds, self._malformed_weights)[0]
            return WsAction(fault, malformed=kind, variant=variant)
        if fault is WsFault.DISCONNECT:
            mode = Disconnect.CLOSE if rng.random() < 0.5 else Disconnect.ABORT
            return WsAction(fault, disconnect=mode, variant=variant)
        return WsAction(fault, variant=variant)


class RestOutcome(StrEnum):
    """What a `/trades` request that passed validation gets."""

    OK = "ok"
    ERROR = "error"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"


ERROR_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True, slots=True)
class RestFaultRates:
    """REST latency distribution and failure rates.

    Latency: with probability `slow_rate` uniform in `[slow_ms, 2 * slow_ms]`, otherwise
    log-normal with median `latency_median_ms` and shape `latency_sigma`, capped at
    `slow_ms` when slow_ms > 0. Failures are exclusive: `timeout_rate` hangs for `hang_ms`
    (then answers 504), `error_rate` answers a 5xx, `throttle_rate` answers 429 with
    `Retry-After: retry_after_s`; the rest is served normally.
    """

    latency_median_ms: float = 2.0
    latency_sigma: float = 0.3
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    timeout_rate: float = 0.0
    hang_ms: float = 60_000.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name in ("slow_rate", "timeout_rate", "error_rate", "throttle_rate"):
            _check_rate(name, getattr(self, name))
        if self.timeout_rate + self.error_rate + self.throttle_rate > 1.0 + 1e-12:
            raise ValueError("timeout_rate + error_rate + throttle_rate must be <= 1")
        if self.latency_median_ms < 0 or self.latency_sigma < 0 or self.slow_ms < 0:
            raise ValueError("latencies must be >= 0")
        if self.hang_ms < 0 or self.retry_after_s < 0:
            raise ValueError("hang_ms and retry_after_s must be >= 0")


@dataclass(frozen=True, slots=True)
class RestDecision:
    """The fate of one request: outcome, HTTP status, delay before answering."""

    outcome: RestOutcome
    status: int
    delay_ms: float
    retry_after_s: int | None = None


@dataclass(slots=True)
class RestFaultPlan:
    """Seeded decisions for successive `/trades` requests."""

    rates: RestFaultRates
    seed: int
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}/rest")

    def latency_ms(self) -> float:
        """One draw of the latency distribution."""
        rng = self._rng
        rates = self.rates
        if rates.slow_rate > 0 and rng.random() < rates.slow_rate:
            return rates.slow_ms * (1.0 + rng.random())
        if rates.latency_median_ms <= 0:
            return 0.0
        value = rates.latency_median_ms * math.exp(rates.latency_sigma * rng.gauss(0.0, 1.0))
        return min(value, rates.slow_ms) if rates.slow_ms > 0 else value

    def next(self) -> RestDecision:
        """The decision for the next request."""
        rng = self._rng
        rates = self.rates
        u = rng.random()
        latency = self.latency_ms()
        if u < rates.timeout_rate:
            return RestDecision(RestOutcome.TIMEOUT, 504, rates.hang_ms)
        u -= rates.timeout_rate
        if u < rates.error_rate:
            return RestDecision(RestOutcome.ERROR, rng.choice(ERROR_STATUSES), latency)
        u -= rates.error_rate
        if u < rates.throttle_rate:
            return RestDecision(
                RestOutcome.THROTTLED, 429, min(latency, 5.0), retry_after_s=rates.retry_after_s
            )
        return RestDecision(RestOutcome.OK, 200, latency)
