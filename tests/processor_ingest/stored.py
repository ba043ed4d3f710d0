"""Reading back what the ingest stored (test helper)."""

from __future__ import annotations

from decimal import Decimal

from trading.v1 import events_pb2

from processor.db import Pool
from processor.event_log import read_events
from processor.ingest.storage import ms_from_datetime
from tradekit.domain import Trade
from tradekit.wire import ms_from_timestamp, trade_from_proto


async def stored_trades(pool: Pool) -> list[tuple[Trade, str, bool, int]]:
    """Every stored trade with its source, verified flag and received_at (ms)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT symbol, trade_id, ts, price, quantity, source, verified, received_at"
            " FROM trades ORDER BY symbol, ts, trade_id"
        )
        rows = await cur.fetchall()
    return [
        (
            Trade(s, int(i), ms_from_datetime(ts), Decimal(p), Decimal(q)),
            src,
            bool(v),
            ms_from_datetime(r),
        )
        for s, i, ts, p, q, src, v, r in rows
    ]


async def trade_events(pool: Pool) -> list[tuple[Trade, int]]:
    """Every TradeEvent in the event log: the trade and its received time (ms), in order."""
    async with pool.connection() as conn:
        events = await read_events(conn, from_seq=1, symbols=[], limit=1_000_000)
    out: list[tuple[Trade, int]] = []
    for event in events:
        assert event.type_name == events_pb2.TradeEvent.DESCRIPTOR.full_name
        msg = events_pb2.TradeEvent.FromString(event.payload)
        trade = trade_from_proto(msg.trade)
        assert event.symbol == trade.symbol
        assert event.subject == f"trading.trade.{trade.symbol}"
        out.append((trade, ms_from_timestamp(msg.received_time, field="received_time")))
    return out


async def count(pool: Pool, table: str) -> int:
    """Rows in ``table`` (a fixed name from the test itself)."""
    queries = {
        "trades": "SELECT count(*) FROM trades",
        "quarantine": "SELECT count(*) FROM quarantine",
        "feed_gaps": "SELECT count(*) FROM feed_gaps",
        "events": "SELECT count(*) FROM events",
    }
    async with pool.connection() as conn:
        cur = await conn.execute(queries[table])
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
