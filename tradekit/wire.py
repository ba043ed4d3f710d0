"""Conversion between the domain model and the shared protobuf messages.

Only gRPC layers call these. Every ``*_from_proto`` validates and raises :class:`WireError`
with a message that names the field and says what to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import trade_pb2

from tradekit.domain import DomainError, TimeWindow, Trade, check_symbol
from tradekit.money import InvalidDecimal, parse_positive, to_text
from tradekit.timetext import iso_ms

_NANOS_PER_MS = 1_000_000
_NANOS_PER_SECOND = 1_000_000_000


class WireError(DomainError):
    """A protobuf message field that cannot be accepted."""


#: Trailing metadata of a StreamEvents refused OUT_OF_RANGE: the newest sequence of the log,
NEWEST_SEQUENCE_KEY = "newest-sequence"
#: and when that event was published, in ms since the epoch (absent when the log is empty): a
#: client resuming after it quotes it as ``last_publish_time``.
NEWEST_PUBLISH_MS_KEY = "newest-publish-time-ms"


def newest_metadata(head: int, published_ms: int | None) -> tuple[tuple[str, str], ...]:
    """The trailing metadata naming the newest event of a log, ``head``, published at
    ``published_ms``."""
    named = ((NEWEST_SEQUENCE_KEY, str(head)),)
    if published_ms is None:
        return named
    return (*named, (NEWEST_PUBLISH_MS_KEY, str(published_ms)))


def newest_from_metadata(metadata: Iterable[Any]) -> tuple[int, int | None] | None:
    """The newest sequence and its publish time in ms (None: not given) that trailing
    ``metadata`` (key, value pairs) names, or None when it names no sequence. Values other
    than ASCII digits are not taken (``int()`` would accept other digits, and raise on
    more)."""
    values: dict[str, int] = {}
    for key, value in metadata:
        if key in (NEWEST_SEQUENCE_KEY, NEWEST_PUBLISH_MS_KEY) and _ascii_digits(value):
            values.setdefault(key, int(value))
    if NEWEST_SEQUENCE_KEY not in values:
        return None
    return values[NEWEST_SEQUENCE_KEY], values.get(NEWEST_PUBLISH_MS_KEY)


def _ascii_digits(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


#: The range of a protobuf Timestamp (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z), in ms.
MIN_TIMESTAMP_MS = -62_135_596_800_000
MAX_TIMESTAMP_MS = 253_402_300_799_999


def ms_from_timestamp(ts: Timestamp, *, field: str) -> int:
    """Milliseconds since the epoch of ``ts``, which must be a whole millisecond within the
    range of a protobuf Timestamp (years 1 to 9999)."""
    if not 0 <= ts.nanos < _NANOS_PER_SECOND:
        raise WireError(f"{field}.nanos must be in 0 .. 999999999 (normalized), got {ts.nanos}")
    if ts.nanos % _NANOS_PER_MS:
        raise WireError(f"{field} must be a whole millisecond (nanos a multiple of 1000000)")
    ms = ts.seconds * 1000 + ts.nanos // _NANOS_PER_MS
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise WireError(
            f"{field} must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z,"
            f" got {ts.seconds} seconds since the epoch"
        )
    return ms


def timestamp_from_ms(ms: int) -> Timestamp:
    """A Timestamp for ``ms`` milliseconds since the epoch."""
    seconds, millis = divmod(ms, 1000)
    return Timestamp(seconds=seconds, nanos=millis * _NANOS_PER_MS)


def ms_from_duration(d: Duration, *, field: str) -> int:
    """Milliseconds in ``d``, which must be a whole number of milliseconds."""
    if not -_NANOS_PER_SECOND < d.nanos < _NANOS_PER_SECOND or d.seconds * d.nanos < 0:
        raise WireError(
            f"{field}.nanos must be within one second and of the sign of its seconds"
            f" (normalized), got seconds={d.seconds} nanos={d.nanos}"
        )
    if d.nanos % _NANOS_PER_MS:
        raise WireError(f"{field} must be a whole number of milliseconds")
    return d.seconds * 1000 + d.nanos // _NANOS_PER_MS


def duration_from_ms(ms: int) -> Duration:
    """A Duration of ``ms`` milliseconds."""
    seconds, millis = divmod(ms, 1000)
    return Duration(seconds=seconds, nanos=millis * _NANOS_PER_MS)


def symbol_from_proto(symbol: str) -> str:
    """Validate a symbol from a request."""
    if not symbol:
        raise WireError("symbol is required, for example 'BTC'")
    try:
        return check_symbol(symbol)
    except DomainError as exc:
        raise WireError(str(exc)) from None


def _window(start_ms: int, end_ms: int) -> TimeWindow:
    if end_ms <= start_ms:
        raise WireError(
            f"end_time must be after start_time (got start_time {iso_ms(start_ms)}, "
            f"end_time {iso_ms(end_ms)})"
        )
    return TimeWindow(start_ms, end_ms)


def required_ms(message: Message, field: str) -> int:
    """Epoch milliseconds of the Timestamp ``field`` of a request; WireError when it is unset
    (an unset time would otherwise read as 1970-01-01)."""
    if not message.HasField(field):
        raise WireError(f"{field} is required (a timestamp at millisecond precision)")
    return ms_from_timestamp(getattr(message, field), field=field)


def window_from_request(message: Message) -> TimeWindow:
    """The window of a request's ``start_time`` and ``end_time``, both required."""
    return _window(required_ms(message, "start_time"), required_ms(message, "end_time"))


def window_to_proto(window: TimeWindow) -> trade_pb2.TimeWindow:
    """The protobuf form of a TimeWindow."""
    return trade_pb2.TimeWindow(
        start_time=timestamp_from_ms(window.start_ms), end_time=timestamp_from_ms(window.end_ms)
    )


def trade_to_proto(trade: Trade) -> trade_pb2.Trade:
    """The protobuf form of a Trade."""
    return trade_pb2.Trade(
        symbol=trade.symbol,
        trade_id=trade.trade_id,
        time=timestamp_from_ms(trade.ts_ms),
        price=to_text(trade.price),
        quantity=to_text(trade.quantity),
    )


def trade_from_proto(msg: trade_pb2.Trade) -> Trade:
    """A validated Trade from its protobuf form."""
    try:
        return Trade(
            symbol=symbol_from_proto(msg.symbol),
            trade_id=msg.trade_id,
            ts_ms=ms_from_timestamp(msg.time, field="time"),
            price=parse_positive(msg.price, field="price"),
            quantity=parse_positive(msg.quantity, field="quantity"),
        )
    except InvalidDecimal as exc:
        raise WireError(str(exc)) from None
