"""Reading the provider's answers exactly: JSON pages, Retry-After, error bodies (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import MalformedResponse
from proxy.provider_client import error_message, parse_page, parse_retry_after


def test_numbers_and_strings_are_read_exactly() -> None:
    """Floats, integers and strings become the exact Decimal they spell."""
    body = (
        b'[{"ticker": "BTC", "ts": 1684083600123, "quantity": 0.1, "price": 27123.450000000001,'
        b' "tradeId": 7}, {"ticker": "BTC", "ts": 1684083600124, "quantity": "3",'
        b' "price": 27000, "tradeId": 8}]'
    )
    first, second = parse_page(body, "BTC")
    assert first.quantity == Decimal("0.1")
    assert first.price == Decimal("27123.450000000001")
    assert (second.quantity, second.price) == (Decimal(3), Decimal(27000))
    assert (first.ts_ms, first.trade_id, second.trade_id) == (1684083600123, 7, 8)


@given(
    st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e12"), allow_nan=False, places=12)
)
def test_any_decimal_round_trips(value: Decimal) -> None:
    """Whatever decimal the provider writes as a JSON number comes back equal."""
    text = format(value, "f")
    body = f'[{{"ticker": "X", "ts": 1, "quantity": {text}, "price": "{text}", "tradeId": 1}}]'
    (trade,) = parse_page(body.encode(), "X")
    assert trade.quantity == value
    assert trade.price == value


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"trades": []}',
        b"[1]",
        b'[{"ticker": "ETH", "ts": 1, "quantity": 1, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": true, "quantity": 1, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": 1, "price": -1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": NaN, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": "abc", "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1.5, "quantity": 1, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": 1, "price": 1e50000000, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": 1e-31, "price": 1, "tradeId": 1}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": 1, "price": 1, "tradeId": 9223372036854775808}]',
        b'[{"ticker": "BTC", "ts": 1, "quantity": 1, "price": 1, "tradeId": -1}]',
        b'[{"ticker": "BTC", "ts": 253402300800000, "quantity": 1, "price": 1, "tradeId": 1}]',
    ],
)
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    """Anything but an array of well-formed trades of the requested ticker is malformed,
    including amounts outside [1e-30, 1e30) (1e50000000 used to pass and become 50 MB of
    text), ids outside 0 .. 2**63 - 1 and times past year 9999."""
    with pytest.raises(MalformedResponse):
        parse_page(body, "BTC")


def test_retry_after_seconds_and_dates() -> None:
    """Delta seconds, fractional seconds and HTTP dates are read; garbage is ignored."""
    assert parse_retry_after("2", now_s=0) == 2.0
    assert parse_retry_after("0.25", now_s=0) == 0.25
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now_s=10.0) == 20.0
    assert parse_retry_after("soon", now_s=0) is None
    assert parse_retry_after("Infinity", now_s=0) is None
    assert parse_retry_after(None, now_s=0) is None


def test_error_message_prefers_the_json_error_field() -> None:
    """The provider's {"error": ...} text is what the caller sees."""
    assert error_message(b'{"error": "unknown ticker \'ZZZ\'"}') == "unknown ticker 'ZZZ'"
    assert error_message(b"plain failure") == "plain failure"
