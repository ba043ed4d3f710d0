"""A true trade and its exact wire forms (provider frame and truth export line).

Prices and quantities are `Decimal` end to end. JSON text is built by hand from
fixed-point decimal strings (`format(d, "f")`), never through `float` or `json.dumps`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

TICKER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class Trade(NamedTuple):
    """One trade of the ground truth (immutable).

    `frame` is the exact provider JSON object (UTF-8), pre-serialized once and reused by
    every WebSocket connection and REST page. `hole` is a tradeId of the same ticker that is
    known never to be a true trade (used to build phantom trades).

    Trades are transient: the truth store keeps columns of plain values (not Trade objects)
    so that millions of retained trades add no work for the cyclic garbage collector.
    """

    ticker: str
    ts: int
    trade_id: int
    price: Decimal
    quantity: Decimal
    frame: bytes
    hole: int


def decimal_text(value: Decimal) -> str:
    """Fixed-point text of a decimal (no exponent), exact."""
    return format(value, "f")


def render_object(fields: list[tuple[str, str]]) -> bytes:
    """A JSON object from (key, raw JSON value text) pairs, keys in the given order."""
    return ("{" + ", ".join(f'"{key}": {value}' for key, value in fields) + "}").encode()


def encode_frame(
    ticker: str,
    ts: int,
    trade_id: int,
    price_text: str,
    quantity_text: str,
    *,
    price_as_string: bool = False,
    quantity_as_string: bool = False,
) -> bytes:
    """The provider frame `{"ticker", "ts", "quantity", "price", "tradeId"}` as exact bytes."""
    quantity = f'"{quantity_text}"' if quantity_as_string else quantity_text
    price = f'"{price_text}"' if price_as_string else price_text
    return (
        f'{{"ticker": "{ticker}", "ts": {ts}, "quantity": {quantity}, '
        f'"price": {price}, "tradeId": {trade_id}}}'
    ).encode()


def make_trade(
    ticker: str, ts: int, trade_id: int, price: Decimal, quantity: Decimal, hole: int
) -> Trade:
    """A trade whose frame carries price and quantity as plain JSON numbers."""
    frame = encode_frame(ticker, ts, trade_id, decimal_text(price), decimal_text(quantity))
    return Trade(ticker, ts, trade_id, price, quantity, frame, hole)


def format_export_line(
    ticker: str, ts: int, trade_id: int, price: Decimal, quantity: Decimal
) -> str:
    """One truth export JSON line (no newline); price and quantity as decimal strings."""
    return (
        f'{{"ticker": "{ticker}", "ts": {ts}, "tradeId": {trade_id}, '
        f'"price": "{decimal_text(price)}", "quantity": "{decimal_text(quantity)}"}}'
    )


def export_line(trade: Trade) -> str:
    """The export line of a trade."""
    return format_export_line(trade.ticker, trade.ts, trade.trade_id, trade.price, trade.quantity)


@dataclass(frozen=True, slots=True)
class ExportedTrade:
    """A trade read back from an export line (no frame, no hole yet)."""

    ticker: str
    ts: int
    trade_id: int
    price: Decimal
    quantity: Decimal


def _decimal_field(obj: dict[str, Any], key: str) -> Decimal:
    raw = obj[key]
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise ValueError(f"field {key!r} must be a decimal string or number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise ValueError(f"field {key!r} is not a decimal: {raw!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError(f"field {key!r} must be positive: {raw!r}")
    return value


def _int_field(obj: dict[str, Any], key: str) -> int:
    raw = obj[key]
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"field {key!r} must be a non-negative integer")
    return raw


def parse_export_line(line: str) -> ExportedTrade:
    """Parse one export line (numbers read as `Decimal`, never float)."""
    obj = json.loads(line, parse_float=Decimal)
    if not isinstance(obj, dict):
        raise ValueError("export line is not a JSON object")
    ticker = obj.get("ticker")
    if not isinstance(ticker, str) or not TICKER_PATTERN.match(ticker):
        raise ValueError(f"bad ticker {ticker!r}")
    try:
        return ExportedTrade(
            ticker=ticker,
            ts=_int_field(obj, "ts"),
            trade_id=_int_field(obj, "tradeId"),
            price=_decimal_field(obj, "price"),
            quantity=_decimal_field(obj, "quantity"),
        )
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from exc
