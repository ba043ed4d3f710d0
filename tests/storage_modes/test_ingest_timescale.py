"""The ingest's batch INSERT on the TimescaleDB schema (a hypertable, in PGlite): new trades
stored exactly, stored ones and verified ranges skipped, and the statement's answer (a count,
and the inserted keys only when some were skipped) right in every case."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

import pytest

from devstack.pglite import PgliteTimescale, unavailable_reason
from processor.ingest.records import Received
from processor.ingest.storage import INSERT_TRADES_SQL, trade_arrays
from tradekit.domain import Trade

pytestmark = pytest.mark.skipif(
    unavailable_reason(need_installed=False) is not None,
    reason=f"PGlite/TimescaleDB bridge unavailable: {unavailable_reason(need_installed=False)}",
)

T0 = 1_763_900_000_000


def _dollar(sql: str) -> str:
    """psycopg's positional ``%s`` as ``$1``, ``$2``, ... in order."""
    numbers = itertools.count(1)
    parts = sql.split("%s")
    return "".join(
        p + (f"${next(numbers)}" if i < len(parts) - 1 else "") for i, p in enumerate(parts)
    )


def _insert(
    db: PgliteTimescale, trades: Sequence[Trade]
) -> tuple[int, set[tuple[str, int]] | None]:
    """Run the ingest's INSERT for ``trades``; its count and the inserted keys it named."""
    received = [Received(t, t.ts_ms + 5) for t in trades]
    total = str(len(trades))
    [(count, symbols, ids)] = db.query(
        _dollar(INSERT_TRADES_SQL), [*trade_arrays(received), total, total]
    )
    if symbols is None:
        return int(count), None
    names = symbols.strip("{}").split(",")
    numbers = [int(i) for i in ids.strip("{}").split(",")]
    return int(count), set(zip(names, numbers, strict=True))


def _stored(db: PgliteTimescale) -> list[tuple[str, int, str, str, str]]:
    rows = db.query(
        "SELECT symbol, trade_id, price::text, quantity::text, source FROM trades"
        " ORDER BY symbol, trade_id"
    )
    return [(s, int(i), p, q, src) for s, i, p, q, src in rows]


def _trade(symbol: str, trade_id: int, ts_ms: int, price: str) -> Trade:
    return Trade(symbol, trade_id, ts_ms, Decimal(price), Decimal("0.010"))


def test_new_trades_are_stored_exactly_and_counted(timescale: PgliteTimescale) -> None:
    """A batch of new trades: all stored with their exact text, the answer is the count only."""
    trades = [_trade("BTC", i, T0 + i, f"27123.4{i}0") for i in range(1, 6)]
    trades.append(_trade("ETH", 1, T0 + 1, "0.000000000000000000000000000001"))
    assert _insert(timescale, trades) == (6, None)
    stored = _stored(timescale)
    assert [(s, i, p, q) for s, i, p, q, _ in stored] == sorted(
        (t.symbol, t.trade_id, format(t.price, "f"), format(t.quantity, "f")) for t in trades
    )
    assert {src for *_, src in stored} == {"ws"}


def test_stored_and_verified_trades_are_skipped_and_the_inserted_ones_named(
    timescale: PgliteTimescale,
) -> None:
    """Repeats (also with another timestamp) and trades before the symbol's verified_until
    are skipped; the answer then names exactly the inserted trades; none inserted names none."""
    first = [_trade("BTC", 1, T0 + 1, "10"), _trade("BTC", 2, T0 + 2, "11")]
    assert _insert(timescale, first) == (2, None)
    timescale.query(
        "INSERT INTO symbols (symbol, verified_until) VALUES ('ETH', $1::timestamptz)"
        " ON CONFLICT (symbol) DO UPDATE SET verified_until = excluded.verified_until",
        ["2025-11-23T12:13:20.100+00:00"],
    )
    batch = [
        _trade("BTC", 1, T0 + 1, "10"),
        _trade("BTC", 2, T0 + 900, "99"),
        _trade("BTC", 3, T0 + 3, "12"),
        _trade("ETH", 7, T0 + 50, "20"),
        _trade("ETH", 8, T0 + 150, "21"),
    ]
    assert _insert(timescale, batch) == (2, {("BTC", 3), ("ETH", 8)})
    assert _insert(timescale, batch[:2]) == (0, None)
    assert [(s, i, p) for s, i, p, _, _ in _stored(timescale)] == [
        ("BTC", 1, "10"),
        ("BTC", 2, "11"),
        ("BTC", 3, "12"),
        ("ETH", 8, "21"),
    ]
