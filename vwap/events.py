"""The processor's events as domain objects, decoded at the gRPC edge."""

from __future__ import annotations

from dataclasses import dataclass

from trading.v1 import events_pb2

from tradekit.domain import Trade
from tradekit.wire import WireError, ms_from_timestamp, symbol_from_proto, trade_from_proto

_KIND_NAMES = {
    events_pb2.CORRECTION_KIND_INSERTED: "inserted",
    events_pb2.CORRECTION_KIND_UPDATED: "updated",
    events_pb2.CORRECTION_KIND_DELETED: "deleted",
}


@dataclass(frozen=True, slots=True)
class TradeArrived:
    """A new provisional trade."""

    sequence: int
    trade: Trade

    @property
    def symbol(self) -> str:
        """The trade's symbol."""
        return self.trade.symbol


@dataclass(frozen=True, slots=True)
class TradeCorrected:
    """A change by reconciliation: ``old`` (None for an insert) became ``new`` (None: deleted)."""

    sequence: int
    symbol: str
    correction_id: int
    kind: str
    old: Trade | None
    new: Trade | None


@dataclass(frozen=True, slots=True)
class WindowVerified:
    """``[start_ms, end_ms)`` of ``symbol`` now equals the REST API, and so does everything
    before ``verified_until_ms`` (the symbol's watermark; None in events older than that field).
    """

    sequence: int
    symbol: str
    start_ms: int
    end_ms: int
    verified_until_ms: int | None = None
    #: Where the symbol's verified range begins (None: from its first trade, or an old event).
    verified_from_ms: int | None = None


@dataclass(frozen=True, slots=True)
class EventsLost:
    """Events the VWAP service could not apply: a gap in the sequence (``symbol`` None: any
    symbol's) or an undecodable event of ``symbol``. State derived from the events (cached
    points, live windows) may miss a change and must be rebuilt from the store."""

    sequence: int
    symbol: str | None
    reason: str


DomainEvent = TradeArrived | TradeCorrected | WindowVerified | EventsLost


def event_from_proto(event: events_pb2.Event) -> DomainEvent:
    """Decode one event; WireError when it cannot be understood."""
    seq = event.sequence
    which = event.WhichOneof("payload")
    if which == "trade":
        return TradeArrived(seq, trade_from_proto(event.trade.trade))
    if which == "correction":
        c = event.correction
        old = trade_from_proto(c.old_trade) if c.HasField("old_trade") else None
        new = trade_from_proto(c.new_trade) if c.HasField("new_trade") else None
        kind = _KIND_NAMES.get(c.kind)
        if kind is None:
            raise WireError(f"correction event {seq} has an unknown kind {c.kind}")
        if new is not None:
            symbol = new.symbol
        elif old is not None:
            symbol = old.symbol
        else:
            raise WireError(f"correction event {seq} has neither old_trade nor new_trade")
        return TradeCorrected(seq, symbol, c.correction_id, kind, old, new)
    if which == "window_verified":
        w = event.window_verified
        return WindowVerified(
            seq,
            symbol_from_proto(w.symbol),
            ms_from_timestamp(w.window.start_time, field="window.start_time"),
            ms_from_timestamp(w.window.end_time, field="window.end_time"),
            (
                ms_from_timestamp(w.verified_until, field="verified_until")
                if w.HasField("verified_until")
                else None
            ),
            (
                ms_from_timestamp(w.verified_from, field="verified_from")
                if w.HasField("verified_from")
                else None
            ),
        )
    raise WireError(f"event {seq} has no payload")
