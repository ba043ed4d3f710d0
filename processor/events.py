"""Build the trade-data events (pure): subjects, type names and protobuf payloads.

Subjects: ``trading.trade.<SYMBOL>``, ``trading.correction.<SYMBOL>``,
``trading.window.<SYMBOL>``. The header ``Trading-Event-Type`` carries the type name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from trading.v1 import events_pb2

from processor.event_log import NewEvent
from tradekit.domain import TimeWindow, Trade
from tradekit.money import to_text
from tradekit.wire import timestamp_from_ms, trade_to_proto, window_to_proto

STREAM_SUBJECTS = "trading.>"
TYPE_HEADER = "Trading-Event-Type"
SEQUENCE_HEADER = "Trading-Sequence"


class CorrectionKind(enum.Enum):
    """What reconciliation did to one trade."""

    INSERTED = "inserted"
    UPDATED = "updated"
    DELETED = "deleted"


_KIND_TO_PROTO = {
    CorrectionKind.INSERTED: events_pb2.CORRECTION_KIND_INSERTED,
    CorrectionKind.UPDATED: events_pb2.CORRECTION_KIND_UPDATED,
    CorrectionKind.DELETED: events_pb2.CORRECTION_KIND_DELETED,
}


@dataclass(frozen=True, slots=True)
class Correction:
    """One change made by reconciliation; ``old`` is None for inserts, ``new`` for deletes."""

    kind: CorrectionKind
    symbol: str
    trade_id: int
    old: Trade | None
    new: Trade | None


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """The result of verifying one window."""

    symbol: str
    window: TimeWindow
    trade_count: int
    inserted: int
    updated: int
    deleted: int

    @property
    def change_count(self) -> int:
        """All changes made in the window."""
        return self.inserted + self.updated + self.deleted


TRADE_EVENT_TYPE = events_pb2.TradeEvent.DESCRIPTOR.full_name

_NANOS_PER_MS = 1_000_000
_UINT64 = 1 << 64
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of ``value`` (negative int64 as its two's complement)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if 0 < value < 1 << 35:  # epoch seconds, nanos and most ids: unrolled
        if value < 1 << 28:
            if value < 1 << 14:
                return bytes((value & 0x7F | 0x80, value >> 7))
            if value < 1 << 21:
                return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
            return bytes(
                (
                    value & 0x7F | 0x80,
                    value >> 7 & 0x7F | 0x80,
                    value >> 14 & 0x7F | 0x80,
                    value >> 21,
                )
            )
        return bytes(
            (
                value & 0x7F | 0x80,
                value >> 7 & 0x7F | 0x80,
                value >> 14 & 0x7F | 0x80,
                value >> 21 & 0x7F | 0x80,
                value >> 28,
            )
        )
    if value < 0:
        value += _UINT64
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: The ``nanos`` field of a Timestamp for each millisecond of a second (none for 0).
_NANOS_FIELDS = [b""] + [b"\x10" + _varint(ms * _NANOS_PER_MS) for ms in range(1, 1000)]


@lru_cache(maxsize=4096)
def _seconds_field(seconds: int) -> bytes:
    """The ``seconds`` field of a Timestamp (trades of one second share it: cached)."""
    return b"\x08" + _varint(seconds) if seconds else b""


def _timestamp_field(tag: bytes, ms: int) -> bytes:
    """A ``google.protobuf.Timestamp`` field of ``ms`` (proto3: zero fields omitted)."""
    seconds, millis = divmod(ms, 1000)
    body = _seconds_field(seconds) + _NANOS_FIELDS[millis]
    return tag + bytes((len(body),)) + body  # at most 17 bytes: a one-byte length


def _string_field(tag: bytes, text: str) -> bytes:
    if not text:
        return b""
    data = text.encode()
    return tag + _varint(len(data)) + data


_SYMBOL_FIELDS: dict[str, bytes] = {}


def trade_event_payload(trade: Trade, received_ms: int) -> bytes:
    """The serialized ``trading.v1.TradeEvent`` of ``trade``: byte for byte what
    ``SerializeToString`` gives for the message built with :func:`trade_to_proto` (fields in
    number order, proto3 defaults omitted), written directly as the feed builds one per trade."""
    symbol = trade.symbol
    symbol_field = _SYMBOL_FIELDS.get(symbol)
    if symbol_field is None:
        symbol_field = _SYMBOL_FIELDS[symbol] = _string_field(b"\x0a", symbol)
    trade_id = trade.trade_id
    body = b"".join(
        (
            symbol_field,
            b"\x10" + _varint(trade_id) if trade_id else b"",
            _timestamp_field(b"\x1a", trade.ts_ms),
            _string_field(b"\x22", to_text(trade.price)),
            _string_field(b"\x2a", to_text(trade.quantity)),
        )
    )
    return b"\x0a" + _varint(len(body)) + body + _timestamp_field(b"\x12", received_ms)


_TRADE_SUBJECTS: dict[str, str] = {}


def trade_event(trade: Trade, received_ms: int) -> NewEvent:
    """A provisional trade received on the feed."""
    symbol = trade.symbol
    subject = _TRADE_SUBJECTS.get(symbol)
    if subject is None:
        subject = _TRADE_SUBJECTS[symbol] = f"trading.trade.{symbol}"
    return NewEvent(symbol, subject, TRADE_EVENT_TYPE, trade_event_payload(trade, received_ms))


def correction_event(correction: Correction, window: TimeWindow, correction_id: int) -> NewEvent:
    """A change made by reconciliation, with old and new values."""
    msg = events_pb2.CorrectionEvent(
        kind=_KIND_TO_PROTO[correction.kind],
        window=window_to_proto(window),
        correction_id=correction_id,
    )
    if correction.old is not None:
        msg.old_trade.CopyFrom(trade_to_proto(correction.old))
    if correction.new is not None:
        msg.new_trade.CopyFrom(trade_to_proto(correction.new))
    return NewEvent(
        correction.symbol,
        f"trading.correction.{correction.symbol}",
        msg.DESCRIPTOR.full_name,
        msg.SerializeToString(),
    )


def window_event(
    outcome: WindowOutcome, verified_until_ms: int, verified_from_ms: int | None = None
) -> NewEvent:
    """A window verified against REST, with the symbol's verified range after it."""
    msg = events_pb2.WindowVerifiedEvent(
        symbol=outcome.symbol,
        window=window_to_proto(outcome.window),
        trade_count=outcome.trade_count,
        change_count=outcome.change_count,
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
        verified_until=timestamp_from_ms(verified_until_ms),
    )
    if verified_from_ms is not None:
        msg.verified_from.CopyFrom(timestamp_from_ms(verified_from_ms))
    return NewEvent(
        outcome.symbol,
        f"trading.window.{outcome.symbol}",
        msg.DESCRIPTOR.full_name,
        msg.SerializeToString(),
    )


def wrap_event(
    seq: int, symbol: str, type_name: str, payload: bytes, created_ms: int
) -> events_pb2.Event:
    """The gRPC ``Event`` envelope for a stored payload."""
    event = events_pb2.Event(
        sequence=seq, symbol=symbol, publish_time=timestamp_from_ms(created_ms)
    )
    if type_name == events_pb2.TradeEvent.DESCRIPTOR.full_name:
        event.trade.ParseFromString(payload)
    elif type_name == events_pb2.CorrectionEvent.DESCRIPTOR.full_name:
        event.correction.ParseFromString(payload)
    elif type_name == events_pb2.WindowVerifiedEvent.DESCRIPTOR.full_name:
        event.window_verified.ParseFromString(payload)
    else:
        raise ValueError(f"unknown event type {type_name!r} at sequence {seq}")
    return event
