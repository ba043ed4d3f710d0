"""The hand-written hot-path encodings equal the library ones: TradeEvent payloads, the array
literals of the batch insert, and the relay's reading of JetStream acknowledgements."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from trading.v1 import events_pb2, trade_pb2

from processor.events import _varint, trade_event, trade_event_payload
from processor.ingest.records import Received
from processor.ingest.storage import trade_arrays
from processor.relay import _BatchAcks
from tradekit.domain import Trade
from tradekit.wire import timestamp_from_ms, trade_to_proto

amounts = st.decimals(
    min_value=Decimal("1e-30"), max_value=Decimal("1e29"), allow_nan=False, places=None
).filter(lambda d: d > 0)
trades = st.builds(
    Trade,
    st.from_regex(r"[A-Z0-9]{0,20}", fullmatch=True),
    st.integers(0, 2**63 - 1),
    st.integers(-(2**45), 2**45),
    amounts,
    amounts,
)


@given(trades, st.integers(-(2**45), 2**45))
def test_trade_event_payload_is_the_protobuf_serialization(trade: Trade, received: int) -> None:
    """The payload is byte for byte SerializeToString of the TradeEvent message."""
    expected = events_pb2.TradeEvent(
        trade=trade_to_proto(trade), received_time=timestamp_from_ms(received)
    ).SerializeToString()
    assert trade_event_payload(trade, received) == expected
    parsed = events_pb2.TradeEvent.FromString(trade_event(trade, received).payload)
    assert parsed.trade.price == format(trade.price, "f")


@given(st.integers(-(2**63), 2**63 - 1).filter(bool))
def test_varint_matches_protobuf(value: int) -> None:
    """Varints, negative int64 included, equal protobuf's own encoding of an int64 field."""
    assert b"\x10" + _varint(value) == trade_pb2.Trade(trade_id=value).SerializeToString()


def test_trade_arrays_are_literals_of_every_column() -> None:
    """The distinct symbols, then every column; symbols are quoted, ids, times and amounts
    written as psycopg would."""
    items = [
        Received(Trade("BTC", 7, 1_700_000_000_123, Decimal("1E+5"), Decimal("0.50")), 5),
        Received(Trade("ETH", 8, -1, Decimal("27123.45"), Decimal("2")), 6),
        Received(Trade("BTC", 9, 3, Decimal("3"), Decimal("4")), 7),
    ]
    assert trade_arrays(items) == (
        '{"BTC","ETH"}',
        '{"BTC","ETH","BTC"}',
        "{7,8,9}",
        "{1700000000123,-1,3}",
        "{1E+5,27123.45,3}",
        "{0.50,2,4}",
        "{5,6,7}",
    )


def test_batch_acks_complete_on_the_last_acknowledgement() -> None:
    """Every sequence must be acknowledged; duplicates count as published but not stored."""
    acks = _BatchAcks([1, 2, 3])
    acks.answer(2, b'{"stream":"S","seq":2}', None)
    acks.answer(9, b'{"stream":"S","seq":9}', None)  # not of this batch
    acks.answer(1, b'{"stream":"S","seq":1,"duplicate":true}', None)
    assert not acks.done.is_set()
    acks.answer(3, b'{"stream":"S","seq":3}', None)
    assert acks.done.is_set()
    assert acks.error is None
    assert acks.stored == 2


def test_batch_acks_fail_on_an_error_or_no_responders() -> None:
    """A JetStream API error or a 503 status ends the batch with an error."""
    refused = _BatchAcks([1, 2])
    refused.answer(1, b'{"error":{"code":503,"description":"no stream"}}', None)
    assert refused.done.is_set()
    assert refused.error is not None
    missing = _BatchAcks([1])
    missing.answer(1, b"", {"Status": "503"})
    assert missing.error is not None
    assert "503" in missing.error
