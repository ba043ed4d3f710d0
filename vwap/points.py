"""VWAP values as domain objects: exact sums over a window and the point they make."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradekit.domain import Trade
from tradekit.money import exact_difference, exact_sum, vwap_quotient

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Sums:
    """Exact totals of a set of trades: notional, volume and count (added and subtracted
    without rounding, see :data:`tradekit.money.EXACT`)."""

    notional: Decimal = _ZERO
    volume: Decimal = _ZERO
    count: int = 0

    @staticmethod
    def of(trade: Trade) -> Sums:
        """The totals of one trade."""
        return Sums(trade.notional, trade.quantity, 1)

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            exact_sum(self.notional, other.notional),
            exact_sum(self.volume, other.volume),
            self.count + other.count,
        )

    def __sub__(self, other: Sums) -> Sums:
        return Sums(
            exact_difference(self.notional, other.notional),
            exact_difference(self.volume, other.volume),
            self.count - other.count,
        )

    @property
    def vwap(self) -> Decimal | None:
        """notional / volume (30 significant digits, half-even); None for an empty set."""
        if self.count == 0:
            return None
        return vwap_quotient(self.notional, self.volume)


def is_verified(
    start_ms: int, end_ms: int, verified_until_ms: int | None, verified_from_ms: int | None
) -> bool:
    """Whether the window ``[start, end)`` lies in a symbol's verified range: it ends by
    ``verified_until`` (None: nothing verified) and starts at or after ``verified_from``
    (None: the range begins at the symbol's first trade)."""
    if verified_until_ms is None or end_ms > verified_until_ms:
        return False
    return verified_from_ms is None or verified_from_ms <= start_ms


@dataclass(frozen=True, slots=True)
class VwapPoint:
    """The VWAP of one symbol over ``[end_ms - window_ms, end_ms)``."""

    symbol: str
    end_ms: int
    window_ms: int
    sums: Sums
    verified: bool

    @property
    def start_ms(self) -> int:
        """Inclusive start of the window."""
        return self.end_ms - self.window_ms

    def contains(self, ts_ms: int) -> bool:
        """True when a trade at ``ts_ms`` falls in the window."""
        return self.start_ms <= ts_ms < self.end_ms
