"""Pure construction of faulty frames from a true trade and a fault decision.

`variant` (drawn by the fault plan) selects sub-variants so that the same decision always
gives the same bytes.
"""

from __future__ import annotations

from decimal import Decimal

from simulator.faults import Malformed
from simulator.trade import Trade, decimal_text, encode_frame, render_object

FIELDS = ("ticker", "ts", "quantity", "price", "tradeId")


def _base_fields(trade: Trade) -> list[tuple[str, str]]:
    return [
        ("ticker", f'"{trade.ticker}"'),
        ("ts", str(trade.ts)),
        ("quantity", decimal_text(trade.quantity)),
        ("price", decimal_text(trade.price)),
        ("tradeId", str(trade.trade_id)),
    ]


def _replace(fields: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == key else v) for k, v in fields]


def _not_json(trade: Trade, variant: int) -> bytes:
    frame = trade.frame
    choice = variant % 5
    if choice == 0:
        return frame[: max(1, len(frame) // 2)]
    if choice == 1:
        return frame.replace(b'"', b"'")
    if choice == 2:
        return frame + b"}"
    if choice == 3:
        return b"upstream error: internal"
    return b""


_WRONG_TYPES: dict[str, tuple[str, ...]] = {
    "ticker": ("42", "null", '["BTC"]'),
    "ts": ('"{ts}"', "null", "{ts}.5", "true"),
    "quantity": ("null", "true", '"abc"', '{{"value": {quantity}}}'),
    "price": ("null", "false", '"n/a"', "[{price}]"),
    "tradeId": ('"id-{trade_id}"', "null", "{trade_id}.25"),
}


def _wrong_type(trade: Trade, variant: int) -> bytes:
    key = FIELDS[variant % len(FIELDS)]
    options = _WRONG_TYPES[key]
    template = options[(variant // len(FIELDS)) % len(options)]
    value = template.format(
        ts=trade.ts,
        quantity=decimal_text(trade.quantity),
        price=decimal_text(trade.price),
        trade_id=trade.trade_id,
    )
    return render_object(_replace(_base_fields(trade), key, value))


def _non_positive(trade: Trade, variant: int) -> bytes:
    key = ("price", "quantity")[variant % 2]
    original = trade.price if key == "price" else trade.quantity
    value = "0" if (variant // 2) % 2 == 0 else "-" + decimal_text(original)
    return render_object(_replace(_base_fields(trade), key, value))


def _wrong_ts_unit(trade: Trade, variant: int) -> bytes:
    choice = variant % 3
    if choice == 0:
        ts = trade.ts // 1000
    elif choice == 1:
        ts = trade.ts * 1000
    else:
        ts = trade.ts * 1_000_000
    return render_object(_replace(_base_fields(trade), "ts", str(ts)))


def malformed_frame(trade: Trade, kind: Malformed, variant: int) -> bytes:
    """An invalid frame derived from `trade`."""
    if kind is Malformed.NOT_JSON:
        return _not_json(trade, variant)
    if kind is Malformed.MISSING_FIELD:
        missing = FIELDS[variant % len(FIELDS)]
        return render_object([(k, v) for k, v in _base_fields(trade) if k != missing])
    if kind is Malformed.WRONG_TYPE:
        return _wrong_type(trade, variant)
    if kind is Malformed.NON_POSITIVE:
        return _non_positive(trade, variant)
    return _wrong_ts_unit(trade, variant)


def _ulp(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return Decimal(1).scaleb(exponent)


def _shifted(value: Decimal, variant: int) -> Decimal:
    """A positive decimal different from `value`, with the same number of decimals."""
    steps = 1 + (variant >> 1) % 500
    delta = _ulp(value) * steps
    if variant % 2 == 0 and value - delta > 0:
        return value - delta
    return value + delta


def wrong_value_frame(trade: Trade, variant: int) -> bytes:
    """The true trade's frame with a wrong (still valid) price or quantity."""
    price, quantity = trade.price, trade.quantity
    if variant % 2 == 0:
        price = _shifted(price, variant >> 1)
    else:
        quantity = _shifted(quantity, variant >> 1)
    return encode_frame(
        trade.ticker, trade.ts, trade.trade_id, decimal_text(price), decimal_text(quantity)
    )


def phantom_frame(trade: Trade, variant: int) -> bytes:
    """A valid-looking trade that never happened (tradeId `trade.hole`), near `trade`."""
    price = _shifted(trade.price, variant)
    quantity = _shifted(trade.quantity, variant >> 9)
    return encode_frame(
        trade.ticker, trade.ts, trade.hole, decimal_text(price), decimal_text(quantity)
    )
