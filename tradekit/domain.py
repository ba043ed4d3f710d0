"""The trade domain model, independent of protobuf, JSON and SQL.

Times are integer milliseconds since the Unix epoch (UTC): the provider's own unit, exact and
cheap to compare. Money is ``Decimal``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from tradekit.money import exact_product
from tradekit.timetext import iso_ms

SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{1,20}")
#: Trade ids are 0 .. 2**63 - 1 (PostgreSQL bigint, protobuf int64).
MAX_TRADE_ID = 2**63 - 1


class DomainError(ValueError):
    """A value that breaks a rule of the domain model; the message says what to change."""


def check_symbol(symbol: str) -> str:
    """Return ``symbol`` when it is 1-20 upper-case letters or digits, else raise DomainError."""
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise DomainError(
            f"symbol must be 1-20 upper-case letters or digits such as 'BTC', got {symbol!r}"
        )
    return symbol


@dataclass(frozen=True, slots=True)
class Trade:
    """One executed trade."""

    symbol: str
    trade_id: int
    ts_ms: int
    price: Decimal
    quantity: Decimal

    @property
    def notional(self) -> Decimal:
        """Exact price * quantity (never rounded, whatever the digits)."""
        return exact_product(self.price, self.quantity)

    @property
    def sort_key(self) -> tuple[int, int]:
        """The provider's order: by time, then trade id."""
        return (self.ts_ms, self.trade_id)

    def same_values(self, other: Trade) -> bool:
        """True when both describe the same trade with numerically equal values."""
        return (
            self.symbol == other.symbol
            and self.trade_id == other.trade_id
            and self.ts_ms == other.ts_ms
            and self.price == other.price
            and self.quantity == other.quantity
        )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A half-open time range ``[start_ms, end_ms)``; never empty."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise DomainError(
                f"end_time must be after start_time, got start={self.start_ms} end={self.end_ms}"
            )

    def __str__(self) -> str:
        """``[start, end)`` in UTC ISO-8601 (what messages to users name)."""
        return f"[{iso_ms(self.start_ms)}, {iso_ms(self.end_ms)})"

    @property
    def length_ms(self) -> int:
        """Length of the window in milliseconds."""
        return self.end_ms - self.start_ms

    def contains(self, ts_ms: int) -> bool:
        """True when ``start_ms <= ts_ms < end_ms``."""
        return self.start_ms <= ts_ms < self.end_ms
