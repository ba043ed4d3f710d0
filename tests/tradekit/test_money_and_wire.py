"""Exact money and protobuf conversion in the shared package."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from trading.v1 import proxy_pb2, trade_pb2

from tradekit.domain import TimeWindow, Trade
from tradekit.money import (
    InvalidDecimal,
    canonical_text,
    exact_difference,
    exact_sum,
    parse_decimal,
    parse_positive,
    to_text,
    vwap_quotient,
)
from tradekit.wire import (
    NEWEST_PUBLISH_MS_KEY,
    NEWEST_SEQUENCE_KEY,
    WireError,
    ms_from_duration,
    ms_from_timestamp,
    newest_from_metadata,
    newest_metadata,
    symbol_from_proto,
    timestamp_from_ms,
    trade_from_proto,
    trade_to_proto,
    window_from_request,
)

decimals = st.decimals(
    allow_nan=False,
    allow_infinity=False,
    places=8,
    min_value=Decimal("1e-8"),
    max_value=Decimal("1e12"),
)


@given(decimals)
def test_decimal_text_round_trips_exactly(value: Decimal) -> None:
    """Any finite decimal survives to_text → parse_decimal with the same value and scale."""
    assert parse_decimal(to_text(value)) == value
    assert to_text(parse_decimal(to_text(value))) == to_text(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "NaN",
        "Infinity",
        "-inf",
        "1,5",
        "0x10",
        "abc",
        "1_000",
        "\u0661\u0662",
        ".5",
        "1.",
    ],
)
def test_bad_decimal_text_is_rejected_with_the_field_name(text: str) -> None:
    """Malformed, padded or non-finite decimals, and forms JSON does not write (underscores,
    non-ASCII digits, a bare point), raise an error naming the field."""
    with pytest.raises(InvalidDecimal, match="price"):
        parse_decimal(text, field="price")


@pytest.mark.parametrize(
    "text", ["1E+30", "1e-31", "1E+999999", "0.0000000000000000000000000000001"]
)
def test_amounts_outside_the_stored_range_are_rejected(text: str) -> None:
    """Magnitudes outside [1e-30, 1e30) are refused as the feed's validation refuses them
    (1E+50 used to pass here, then fail later as 51 digits of text)."""
    with pytest.raises(InvalidDecimal, match=r"price is out of range \[1e-30, 1e30\)"):
        parse_positive(text, field="price")


@pytest.mark.parametrize("text", ["1E+29", "9.99E+29", "1e-30", "0.000000000000000000000000000001"])
def test_amounts_at_the_range_edges_are_exact(text: str) -> None:
    """The edges of the range parse exactly and survive the canonical text."""
    value = parse_positive(text, field="price")
    assert value == Decimal(text)
    assert parse_positive(to_text(value), field="price") == value


@pytest.mark.parametrize("text", ["0", "-1", "0.000"])
def test_prices_must_be_positive(text: str) -> None:
    """Zero and negative values are not prices or quantities."""
    with pytest.raises(InvalidDecimal, match="positive"):
        parse_positive(text, field="price")


def test_to_text_never_uses_exponent_notation() -> None:
    """Values that Decimal would print with an exponent are written out in full."""
    assert to_text(Decimal("1E+3")) == "1000"
    assert to_text(Decimal("1E-9")) == "0.000000001"


@given(decimals, decimals)
def test_vwap_quotient_is_half_even_at_30_digits(notional: Decimal, volume: Decimal) -> None:
    """The quotient equals the exact ratio rounded half-even to 30 significant digits."""
    result = vwap_quotient(notional, volume)
    assert len(result.as_tuple().digits) <= 30
    exact_error = abs(result * volume - notional) / volume
    assert exact_error <= abs(result) * Decimal("1e-29")


def test_vwap_of_empty_volume_is_undefined() -> None:
    """Dividing by zero volume is refused rather than returning a number."""
    with pytest.raises(ZeroDivisionError):
        vwap_quotient(Decimal(0), Decimal(0))


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_timestamp_round_trips_milliseconds(ms: int) -> None:
    """Milliseconds → Timestamp → milliseconds is the identity."""
    assert ms_from_timestamp(timestamp_from_ms(ms), field="time") == ms


def test_sub_millisecond_timestamps_are_rejected() -> None:
    """A timestamp with nanoseconds below a millisecond gets a clear error."""
    with pytest.raises(WireError, match="whole millisecond"):
        ms_from_timestamp(Timestamp(seconds=1, nanos=1), field="start_time")


def test_unnormalized_times_and_durations_are_rejected() -> None:
    """Nanos outside a second, or a duration's nanos against its seconds' sign, are refused by
    name (they used to be folded into the milliseconds)."""
    for nanos in (1_000_000_000, -1_000_000):
        with pytest.raises(WireError, match=r"start_time.nanos must be in 0 \.\. 999999999"):
            ms_from_timestamp(Timestamp(seconds=1, nanos=nanos), field="start_time")
    for seconds, nanos in ((0, 2_000_000_000), (1, -5_000_000), (-1, 5_000_000)):
        with pytest.raises(WireError, match=r"window\.nanos must be within one second"):
            ms_from_duration(Duration(seconds=seconds, nanos=nanos), field="window")
    assert ms_from_duration(Duration(seconds=-1, nanos=-5_000_000), field="window") == -1_005
    assert ms_from_duration(Duration(seconds=0, nanos=-5_000_000), field="window") == -5
    assert ms_from_timestamp(Timestamp(seconds=1, nanos=999_000_000), field="t") == 1_999


def test_timestamps_beyond_years_1_to_9999_are_rejected() -> None:
    """Only the protobuf Timestamp range is accepted (the stores' dates end in year 9999)."""
    for seconds in (253_402_300_800, -62_135_596_801):
        with pytest.raises(WireError, match="between 0001-01-01"):
            ms_from_timestamp(Timestamp(seconds=seconds), field="end_time")
    last = Timestamp(seconds=253_402_300_799, nanos=999_000_000)
    assert ms_from_timestamp(last, field="end_time") == 253_402_300_799_999
    assert ms_from_timestamp(Timestamp(seconds=-62_135_596_800), field="t") == -62_135_596_800_000


def test_window_requires_end_after_start() -> None:
    """An empty or reversed window is rejected with both times in the message."""
    with pytest.raises(WireError, match="end_time must be after start_time"):
        window_from_request(
            proxy_pb2.FetchTradesRequest(
                start_time=timestamp_from_ms(10), end_time=timestamp_from_ms(10)
            )
        )
    request = proxy_pb2.FetchTradesRequest(
        start_time=timestamp_from_ms(10), end_time=timestamp_from_ms(11)
    )
    assert window_from_request(request) == TimeWindow(10, 11)


def test_a_request_window_needs_both_times() -> None:
    """An unset start_time or end_time is refused by name, not read as the epoch."""
    request = proxy_pb2.FetchTradesRequest(symbol="BTC", end_time=timestamp_from_ms(10))
    with pytest.raises(WireError, match="start_time is required"):
        window_from_request(request)
    request.start_time.CopyFrom(timestamp_from_ms(0))  # the epoch itself, set: accepted
    assert window_from_request(request) == TimeWindow(0, 10)
    request.ClearField("end_time")
    with pytest.raises(WireError, match="end_time is required"):
        window_from_request(request)


@pytest.mark.parametrize("symbol", ["", "btc", "BTC-USD", "X" * 21, "BTC\n", " BTC"])
def test_malformed_symbols_are_rejected(symbol: str) -> None:
    """Symbols must be 1-20 upper-case letters or digits and nothing else (a trailing newline
    used to pass: GetVwap answered NOT_FOUND for it, StreamVwap stayed silent)."""
    with pytest.raises(WireError, match="symbol"):
        symbol_from_proto(symbol)


def test_trade_round_trips_through_protobuf() -> None:
    """A trade keeps its exact values through protobuf."""
    trade = Trade("BTC", 7, 1_684_083_600_123, Decimal("27123.450"), Decimal("0.00000001"))
    back = trade_from_proto(trade_pb2.Trade.FromString(trade_to_proto(trade).SerializeToString()))
    assert back == trade
    assert to_text(back.price) == "27123.450"


def test_trade_with_zero_quantity_is_rejected() -> None:
    """A protobuf trade with a non-positive quantity is refused."""
    msg = trade_to_proto(Trade("BTC", 7, 1, Decimal("1"), Decimal("1")))
    msg.quantity = "0"
    with pytest.raises(WireError, match="quantity"):
        trade_from_proto(msg)


# Amounts as the feed validation accepts them: up to 40 significant digits, within [1e-30, 1e30).
_wide_amounts = st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(1, 10**40 - 1),
    st.integers(-30, -10),
)


@given(_wide_amounts, _wide_amounts, st.lists(_wide_amounts, min_size=1, max_size=20))
def test_money_arithmetic_never_rounds(
    price: Decimal, quantity: Decimal, others: list[Decimal]
) -> None:
    """Notional, sums and differences equal rational arithmetic at any number of digits
    (the default context would keep 28 significant digits)."""
    notional = Trade("BTC", 1, 0, price, quantity).notional
    assert Fraction(notional) == Fraction(price) * Fraction(quantity)
    total = Decimal(0)
    for value in others:
        total = exact_sum(total, value)
    assert Fraction(total) == sum(map(Fraction, others))
    assert exact_difference(exact_sum(Decimal("1e20"), total), Decimal("1e20")) == total


def test_the_newest_event_round_trips_through_trailing_metadata() -> None:
    """What an OUT_OF_RANGE StreamEvents names is read back as sent; an empty log names no
    publish time; only ASCII digits are taken, and metadata naming no sequence is None."""
    assert newest_from_metadata(newest_metadata(42, 1_700_000_000_123)) == (42, 1_700_000_000_123)
    assert newest_metadata(0, None) == ((NEWEST_SEQUENCE_KEY, "0"),)
    assert newest_from_metadata(newest_metadata(0, None)) == (0, None)
    arabic_indic_seven = "\u0667"  # isdigit() is true, and int() accepts it
    assert newest_from_metadata([(NEWEST_SEQUENCE_KEY, arabic_indic_seven)]) is None
    assert newest_from_metadata(
        [(NEWEST_SEQUENCE_KEY, "7"), (NEWEST_PUBLISH_MS_KEY, "-5"), ("other", "1")]
    ) == (7, None)
    assert newest_from_metadata([("newest-sequence-bin", b"7")]) is None


@given(decimals, st.integers(min_value=0, max_value=40))
def test_canonical_text_is_one_text_per_number(value: Decimal, extra_zeros: int) -> None:
    """The same number written with any scale has one canonical text: plain notation, no
    trailing zero in a fraction, and exactly the number."""
    text = canonical_text(value)
    plain = format(value, "f")
    padded = Decimal(plain + ("" if "." in plain else ".") + "0" * extra_zeros)
    assert canonical_text(padded) == text
    assert Decimal(text) == value
    assert "e" not in text.lower()
    assert "." not in text or not text.endswith(("0", "."))
