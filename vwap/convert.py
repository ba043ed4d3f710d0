"""Domain ⇄ protobuf for the VWAP service's messages (used by the gRPC layer and live fan-out)."""

from __future__ import annotations

from trading.v1 import trade_pb2, vwap_pb2

from tradekit.money import canonical_text, vwap_quotient
from tradekit.wire import timestamp_from_ms, trade_to_proto
from vwap.points import VwapPoint
from vwap.rolling import Revision, Streamed, Update
from vwap.storage import StoredTrade, SymbolSummary

_SOURCES = {"ws": trade_pb2.TRADE_SOURCE_WEBSOCKET, "rest": trade_pb2.TRADE_SOURCE_REST}


def point_to_proto(point: VwapPoint) -> vwap_pb2.VwapPoint:
    """The protobuf form of a point; ``vwap`` unset for an empty window.

    On GetVwap's hot path: the timestamps are filled in place (no Timestamp built and copied).
    The decimals are in canonical text (:func:`tradekit.money.canonical_text`): a window's
    sums read from the aggregates, from prefix sums of a series or from a live running total
    carry different scales, and its points must read the same whichever RPC answers.
    """
    sums = point.sums
    end = point.end_ms
    start = end - point.window_ms
    msg = vwap_pb2.VwapPoint(
        symbol=point.symbol,
        notional=canonical_text(sums.notional),
        volume=canonical_text(sums.volume),
        trade_count=sums.count,
        verified=point.verified,
    )
    stamp = msg.start_time
    stamp.seconds = start // 1000
    stamp.nanos = start % 1000 * 1_000_000
    stamp = msg.end_time
    stamp.seconds = end // 1000
    stamp.nanos = end % 1000 * 1_000_000
    if sums.count:
        msg.vwap = canonical_text(vwap_quotient(sums.notional, sums.volume))
    return msg


def message_to_proto(message: Streamed) -> vwap_pb2.StreamVwapResponse:
    """A live update, revision or verification as a StreamVwap response."""
    if isinstance(message, Update):
        return vwap_pb2.StreamVwapResponse(
            update=vwap_pb2.VwapUpdate(
                point=point_to_proto(message.point),
                closed=message.closed,
                sequence=message.sequence,
            )
        )
    if isinstance(message, Revision):
        return vwap_pb2.StreamVwapResponse(
            revision=vwap_pb2.VwapRevision(
                old_point=point_to_proto(message.old),
                new_point=point_to_proto(message.new),
                reason=message.reason,
                sequence=message.sequence,
            )
        )
    verified = vwap_pb2.VwapVerified(
        symbol=message.symbol,
        verified_until=timestamp_from_ms(message.verified_until_ms),
        sequence=message.sequence,
    )
    if message.verified_from_ms is not None:
        verified.verified_from.CopyFrom(timestamp_from_ms(message.verified_from_ms))
    return vwap_pb2.StreamVwapResponse(verified=verified)


def stored_trade_to_proto(stored: StoredTrade) -> trade_pb2.StoredTrade:
    """The protobuf form of a stored trade."""
    return trade_pb2.StoredTrade(
        trade=trade_to_proto(stored.trade),
        source=_SOURCES.get(stored.source, trade_pb2.TRADE_SOURCE_UNSPECIFIED),
        verified=stored.verified,
        received_time=timestamp_from_ms(stored.received_ms),
    )


def summary_to_proto(summary: SymbolSummary) -> vwap_pb2.SymbolSummary:
    """The protobuf form of a symbol summary (verified_until unset when unknown)."""
    msg = vwap_pb2.SymbolSummary(
        symbol=summary.symbol,
        first_trade_time=timestamp_from_ms(summary.first_ms),
        last_trade_time=timestamp_from_ms(summary.last_ms),
    )
    if summary.verified_until_ms is not None:
        msg.verified_until.CopyFrom(timestamp_from_ms(summary.verified_until_ms))
    if summary.verified_from_ms is not None:
        msg.verified_from.CopyFrom(timestamp_from_ms(summary.verified_from_ms))
    return msg
