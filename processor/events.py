"""Build the trade-data events (pure): subjects, type names and protobuf payloads.

Subjects: ``trading.trade.<SYMBOL>``, ``trading.correction.<SYMBOL>``,
``trading.window.<SYMBOL>``. The header ``Trading-Event-Type`` carries the type name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import events_pb2

from processor.event_log import NewEvent
from tradekit.domain import TimeWindow, Trade
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


def trade_event(trade: Trade, received_ms: int) -> NewEvent:
    """A provisional trade received on the feed."""
    msg = events_pb2.TradeEvent(
        trade=trade_to_proto(trade), received_time=timestamp_from_ms(received_ms)
    )
    return NewEvent(
        trade.symbol,
        f"trading.trade.{trade.symbol}",
        msg.DESCRIPTOR.full_name,
        msg.SerializeToString(),
    )


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


def window_event(outcome: WindowOutcome) -> NewEvent:
    """A window verified against REST."""
    msg = events_pb2.WindowVerifiedEvent(
        symbol=outcome.symbol,
        window=window_to_proto(outcome.window),
        trade_count=outcome.trade_count,
        change_count=outcome.change_count,
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
    )
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
    event = events_pb2.Event(sequence=seq, symbol=symbol, publish_time=_ts(created_ms))
    if type_name == events_pb2.TradeEvent.DESCRIPTOR.full_name:
        event.trade.ParseFromString(payload)
    elif type_name == events_pb2.CorrectionEvent.DESCRIPTOR.full_name:
        event.correction.ParseFromString(payload)
    elif type_name == events_pb2.WindowVerifiedEvent.DESCRIPTOR.full_name:
        event.window_verified.ParseFromString(payload)
    else:
        raise ValueError(f"unknown event type {type_name!r} at sequence {seq}")
    return event


def _ts(ms: int) -> Timestamp:
    return timestamp_from_ms(ms)
