"""Small database helpers of the reconciliation tests (seeding and reading back)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from processor.db import Connection
from processor.reconcile.storage import to_dt, to_ms
from tradekit.domain import Trade


def trade(trade_id: int, ts: int, price: str, qty: str = "1", symbol: str = "BTC") -> Trade:
    """A BTC trade."""
    return Trade(symbol, trade_id, ts, Decimal(price), Decimal(qty))


async def seed(conn: Connection, trades: Sequence[Trade]) -> None:
    """Store ``trades`` as the WebSocket feed would (source 'ws', unverified)."""
    for t in trades:
        await conn.execute(
            "INSERT INTO trades (symbol, trade_id, ts, price, quantity, source)"
            " VALUES (%s, %s, %s, %s, %s, 'ws')",
            (t.symbol, t.trade_id, to_dt(t.ts_ms), t.price, t.quantity),
        )


async def stored(conn: Connection, symbol: str) -> list[Trade]:
    """Every stored trade of ``symbol`` in provider order."""
    cur = await conn.execute(
        "SELECT trade_id, ts, price, quantity FROM trades WHERE symbol = %s ORDER BY ts, trade_id",
        (symbol,),
    )
    return [Trade(symbol, i, to_ms(ts), p, q) for i, ts, p, q in await cur.fetchall()]


def same(a: Sequence[Trade], b: Sequence[Trade]) -> bool:
    """Same trades with numerically equal values, in provider order."""
    a = sorted(a, key=lambda t: t.sort_key)
    b = sorted(b, key=lambda t: t.sort_key)
    return len(a) == len(b) and all(x.same_values(y) for x, y in zip(a, b, strict=True))
