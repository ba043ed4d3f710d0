"""What the feed hands the writer (pure values): accepted trades, quarantined frames and gaps."""

from __future__ import annotations

from dataclasses import dataclass

from tradekit.domain import Trade


@dataclass(frozen=True, slots=True)
class Received:
    """A valid, not yet seen trade and when it arrived (epoch ms)."""

    trade: Trade
    received_ms: int


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A malformed frame kept verbatim (as storable text) with the reason it was rejected."""

    payload: str
    error: str
    received_ms: int


@dataclass(frozen=True, slots=True)
class Gap:
    """A period ``[start_ms, end_ms)`` in which the feed may have missed trades, and why."""

    start_ms: int
    end_ms: int
    reason: str


Record = Received | Quarantined | Gap
