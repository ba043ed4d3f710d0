"""What the feed hands the writer (pure values): accepted trades, quarantined frames and gaps."""

from __future__ import annotations

from dataclasses import dataclass, field

from processor.event_log import NewEvent
from processor.events import trade_event
from tradekit.domain import Trade


@dataclass(frozen=True, slots=True)
class Received:
    """A valid, not yet seen trade, when it arrived (epoch ms), and the event announcing it.

    The event is built with the record, when the feed reads the frame, not by the writer: the
    feed's work overlaps the writer's waits on the database, the writer's own work does not.
    """

    trade: Trade
    received_ms: int
    event: NewEvent = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", trade_event(self.trade, self.received_ms))


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A malformed frame kept verbatim (as storable text) with the reason it was rejected."""

    payload: str
    error: str
    received_ms: int


@dataclass(frozen=True, slots=True)
class Gap:
    """A period ``[start_ms, end_ms)`` in which the feed may have missed trades, and why."""

    start_ms: int
    end_ms: int
    reason: str


Record = Received | Quarantined | Gap
