"""The SQL of reconciliation: parameterized statements over the processor's tables.

Times cross this module as integer epoch milliseconds; money as ``Decimal``. Every function
runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from processor.db import Connection
from processor.events import Correction, WindowOutcome
from tradekit.domain import TimeWindow, Trade

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_dt(ms: int) -> datetime:
    """The timestamptz value of ``ms`` epoch milliseconds (exact)."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of a timestamptz value (exact for millisecond values)."""
    return (value - _EPOCH) // _MS


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One row of ``coverage_windows``."""

    symbol: str
    start_ms: int
    end_ms: int
    state: str
    trade_count: int
    change_count: int
    updated_ms: int


async def ensure_symbol(conn: Connection, symbol: str, verified_until_ms: int) -> int:
    """Create the symbol's row at ``verified_until_ms`` unless it exists (its verified range
    empty: it begins there too); return its watermark."""
    await conn.execute(
        "INSERT INTO symbols (symbol, verified_until, verified_from) VALUES (%s, %s, %s)"
        " ON CONFLICT (symbol) DO NOTHING",
        (symbol, to_dt(verified_until_ms), to_dt(verified_until_ms)),
    )
    watermark = await verified_until(conn, symbol)
    assert watermark is not None
    return watermark


async def verified_until(conn: Connection, symbol: str, *, lock: bool = False) -> int | None:
    """The symbol's watermark (None without a row); ``lock`` takes the row lock."""
    query = "SELECT verified_until FROM symbols WHERE symbol = %s"
    cur = await conn.execute(query + (" FOR NO KEY UPDATE" if lock else ""), (symbol,))
    row = await cur.fetchone()
    return None if row is None else to_ms(row[0])


@dataclass(frozen=True, slots=True)
class VerifiedRange:
    """A symbol's verified range: trades in ``[from_ms, until_ms)`` equal the REST API
    (``from_ms`` None: from its first trade)."""

    until_ms: int
    from_ms: int | None


async def verified_range(
    conn: Connection, symbol: str, *, lock: bool = False
) -> VerifiedRange | None:
    """The symbol's verified range (None without a row); ``lock`` takes the row lock."""
    query = "SELECT verified_until, verified_from FROM symbols WHERE symbol = %s"
    cur = await conn.execute(query + (" FOR NO KEY UPDATE" if lock else ""), (symbol,))
    row = await cur.fetchone()
    if row is None:
        return None
    return VerifiedRange(to_ms(row[0]), None if row[1] is None else to_ms(row[1]))


async def set_verified_from(conn: Connection, symbol: str, ms: int) -> None:
    """Move the start of the symbol's verified range back to ``ms``."""
    await conn.execute(
        "UPDATE symbols SET verified_from = %s WHERE symbol = %s", (to_dt(ms), symbol)
    )


async def verified_start_to(conn: Connection, symbol: str, ms: int) -> int | None:
    """The earliest start of a verified ledger window holding the instant just before ``ms``."""
    cur = await conn.execute(
        "SELECT min(start_ts) FROM coverage_windows"
        " WHERE symbol = %s AND state = 'verified' AND start_ts < %s AND end_ts >= %s",
        (symbol, to_dt(ms), to_dt(ms)),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else to_ms(row[0])


async def set_verified_until(conn: Connection, symbol: str, ms: int) -> None:
    """Move the symbol's watermark to ``ms``."""
    await conn.execute(
        "UPDATE symbols SET verified_until = %s WHERE symbol = %s", (to_dt(ms), symbol)
    )


async def verified_end_from(conn: Connection, symbol: str, ms: int) -> int | None:
    """The furthest end of a verified ledger window containing ``ms``, if any."""
    cur = await conn.execute(
        "SELECT max(end_ts) FROM coverage_windows"
        " WHERE symbol = %s AND state = 'verified' AND start_ts <= %s AND end_ts > %s",
        (symbol, to_dt(ms), to_dt(ms)),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else to_ms(row[0])


async def unverified_trade_in(conn: Connection, symbol: str, window: TimeWindow) -> bool:
    """Whether ``window`` holds a trade not flagged verified (stored after its verification)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM trades"
        " WHERE symbol = %s AND ts >= %s AND ts < %s AND NOT verified)",
        (symbol, to_dt(window.start_ms), to_dt(window.end_ms)),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def reopen_windows(conn: Connection, symbol: str, window: TimeWindow) -> None:
    """Mark the verified ledger windows starting in ``window`` pending: planned again, their
    counts kept (the next verification adds to them)."""
    await conn.execute(
        "UPDATE coverage_windows SET state = 'pending', updated_at = now()"
        " WHERE symbol = %s AND state = 'verified' AND start_ts >= %s AND start_ts < %s",
        (symbol, to_dt(window.start_ms), to_dt(window.end_ms)),
    )


async def verified_starts_after(conn: Connection, symbol: str, ms: int) -> set[int]:
    """Start times of verified ledger windows starting at or after ``ms``."""
    cur = await conn.execute(
        "SELECT start_ts FROM coverage_windows"
        " WHERE symbol = %s AND state = 'verified' AND start_ts >= %s",
        (symbol, to_dt(ms)),
    )
    return {to_ms(r[0]) for r in await cur.fetchall()}


async def gaps_after(conn: Connection, ms: int) -> list[tuple[int, int]]:
    """Feed gaps (all symbols) ending after ``ms``, as ``(start_ms, end_ms)``."""
    cur = await conn.execute(
        "SELECT start_ts, end_ts FROM feed_gaps WHERE end_ts > %s ORDER BY start_ts", (to_dt(ms),)
    )
    return [(to_ms(s), to_ms(e)) for s, e in await cur.fetchall()]


async def gaps_overlapping(conn: Connection, window: TimeWindow) -> list[tuple[int, int]]:
    """Feed gaps overlapping ``window``, as ``(start_ms, end_ms)``, by start."""
    cur = await conn.execute(
        "SELECT start_ts, end_ts FROM feed_gaps WHERE end_ts > %s AND start_ts < %s"
        " ORDER BY start_ts",
        (to_dt(window.start_ms), to_dt(window.end_ms)),
    )
    return [(to_ms(s), to_ms(e)) for s, e in await cur.fetchall()]


async def mark_pending(conn: Connection, symbol: str, windows: Sequence[TimeWindow]) -> None:
    """Record ``windows`` as pending in the ledger (verified windows keep their state)."""
    if not windows:
        return
    await conn.execute(
        "INSERT INTO coverage_windows (symbol, start_ts, end_ts, state)"
        " SELECT %s, s, e, 'pending' FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS w(s, e)"
        " ON CONFLICT (symbol, start_ts) DO UPDATE SET end_ts = excluded.end_ts,"
        " state = 'pending', updated_at = now()"
        " WHERE coverage_windows.state <> 'verified'",
        (symbol, [to_dt(w.start_ms) for w in windows], [to_dt(w.end_ms) for w in windows]),
    )


def _trade(symbol: str, row: tuple[object, ...]) -> Trade:
    trade_id, ts, price, quantity = row
    assert isinstance(trade_id, int)
    assert isinstance(ts, datetime)
    assert isinstance(price, Decimal)
    assert isinstance(quantity, Decimal)
    return Trade(symbol, trade_id, to_ms(ts), price, quantity)


async def stored_trades(conn: Connection, symbol: str, window: TimeWindow) -> list[Trade]:
    """Stored trades of ``symbol`` in ``window``, in provider order."""
    cur = await conn.execute(
        "SELECT trade_id, ts, price, quantity FROM trades"
        " WHERE symbol = %s AND ts >= %s AND ts < %s ORDER BY ts, trade_id",
        (symbol, to_dt(window.start_ms), to_dt(window.end_ms)),
    )
    return [_trade(symbol, row) for row in await cur.fetchall()]


async def stray_copies(
    conn: Connection, symbol: str, window: TimeWindow, trade_ids: Sequence[int]
) -> list[Trade]:
    """Stored trades with one of ``trade_ids`` whose time lies outside ``window``."""
    if not trade_ids:
        return []
    cur = await conn.execute(
        "SELECT trade_id, ts, price, quantity FROM trades"
        " WHERE symbol = %s AND trade_id = ANY(%s) AND (ts < %s OR ts >= %s)"
        " ORDER BY ts, trade_id",
        (symbol, list(trade_ids), to_dt(window.start_ms), to_dt(window.end_ms)),
    )
    return [_trade(symbol, row) for row in await cur.fetchall()]


async def delete_trades(conn: Connection, trades: Sequence[Trade]) -> None:
    """Delete exactly these rows (by symbol, time and trade id), in one statement."""
    if not trades:
        return
    await conn.execute(
        "DELETE FROM trades t USING unnest(%s::text[], %s::timestamptz[], %s::bigint[])"
        " AS d(symbol, ts, trade_id)"
        " WHERE t.symbol = d.symbol AND t.ts = d.ts AND t.trade_id = d.trade_id",
        (
            [t.symbol for t in trades],
            [to_dt(t.ts_ms) for t in trades],
            [t.trade_id for t in trades],
        ),
    )


async def insert_rest_trades(conn: Connection, trades: Sequence[Trade]) -> None:
    """Insert REST's trades (source 'rest', verified), in one statement."""
    if not trades:
        return
    await conn.execute(
        "INSERT INTO trades (symbol, trade_id, ts, price, quantity, source, verified)"
        " SELECT s, i, ts, p, q, 'rest', true FROM unnest(%s::text[], %s::bigint[],"
        " %s::timestamptz[], %s::numeric[], %s::numeric[]) AS n(s, i, ts, p, q)",
        (
            [t.symbol for t in trades],
            [t.trade_id for t in trades],
            [to_dt(t.ts_ms) for t in trades],
            [t.price for t in trades],
            [t.quantity for t in trades],
        ),
    )


async def update_values(conn: Connection, trades: Sequence[Trade]) -> None:
    """Set price and quantity of rows at the same time and id to REST's, in one statement."""
    if not trades:
        return
    await conn.execute(
        "UPDATE trades t SET price = u.p, quantity = u.q, source = 'rest', verified = true"
        " FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::numeric[],"
        " %s::numeric[]) AS u(s, i, ts, p, q)"
        " WHERE t.symbol = u.s AND t.trade_id = u.i AND t.ts = u.ts",
        (
            [t.symbol for t in trades],
            [t.trade_id for t in trades],
            [to_dt(t.ts_ms) for t in trades],
            [t.price for t in trades],
            [t.quantity for t in trades],
        ),
    )


async def mark_verified(conn: Connection, symbol: str, window: TimeWindow) -> None:
    """Flag every trade of the window as verified."""
    await conn.execute(
        "UPDATE trades SET verified = true"
        " WHERE symbol = %s AND ts >= %s AND ts < %s AND NOT verified",
        (symbol, to_dt(window.start_ms), to_dt(window.end_ms)),
    )


def _optional(trade: Trade | None) -> tuple[datetime | None, Decimal | None, Decimal | None]:
    if trade is None:
        return (None, None, None)
    return (to_dt(trade.ts_ms), trade.price, trade.quantity)


async def record_corrections(
    conn: Connection, window: TimeWindow, corrections: Sequence[Correction]
) -> list[int]:
    """Insert one ``corrections`` row per correction; return their ids in the same order."""
    ids: list[int] = []
    for c in corrections:
        cur = await conn.execute(
            "INSERT INTO corrections (symbol, trade_id, kind, old_ts, old_price, old_quantity,"
            " new_ts, new_price, new_quantity, window_start, window_end)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                c.symbol,
                c.trade_id,
                c.kind.value,
                *_optional(c.old),
                *_optional(c.new),
                to_dt(window.start_ms),
                to_dt(window.end_ms),
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids


async def record_verified(conn: Connection, outcome: WindowOutcome) -> None:
    """Upsert the window's ledger row as verified; counts add up over re-verifications (a
    pending row holds none, or a reopened window's earlier ones)."""
    await conn.execute(
        "INSERT INTO coverage_windows AS c (symbol, start_ts, end_ts, state, trade_count,"
        " change_count, inserted, updated, deleted)"
        " VALUES (%s, %s, %s, 'verified', %s, %s, %s, %s, %s)"
        " ON CONFLICT (symbol, start_ts) DO UPDATE SET end_ts = excluded.end_ts,"
        " state = 'verified', trade_count = excluded.trade_count,"
        " change_count = c.change_count + excluded.change_count,"
        " inserted = c.inserted + excluded.inserted,"
        " updated = c.updated + excluded.updated,"
        " deleted = c.deleted + excluded.deleted,"
        " updated_at = now()",
        (
            outcome.symbol,
            to_dt(outcome.window.start_ms),
            to_dt(outcome.window.end_ms),
            outcome.trade_count,
            outcome.change_count,
            outcome.inserted,
            outcome.updated,
            outcome.deleted,
        ),
    )


async def ledger_rows(conn: Connection, symbol: str, window: TimeWindow) -> list[LedgerRow]:
    """Ledger rows of ``symbol`` overlapping ``window``, by start."""
    cur = await conn.execute(
        "SELECT start_ts, end_ts, state, trade_count, change_count, updated_at"
        " FROM coverage_windows WHERE symbol = %s AND end_ts > %s AND start_ts < %s"
        " ORDER BY start_ts",
        (symbol, to_dt(window.start_ms), to_dt(window.end_ms)),
    )
    return [
        LedgerRow(symbol, to_ms(s), to_ms(e), str(st), int(tc), int(cc), to_ms(u))
        for s, e, st, tc, cc, u in await cur.fetchall()
    ]


async def queue_aggregate_refresh(conn: Connection, window: TimeWindow) -> None:
    """Ask for a continuous-aggregate refresh of ``window`` (TimescaleDB mode)."""
    await conn.execute(
        "INSERT INTO aggregate_refresh_queue (start_ts, end_ts) VALUES (%s, %s)",
        (to_dt(window.start_ms), to_dt(window.end_ms)),
    )


async def pending_refreshes(conn: Connection) -> list[tuple[int, int, int]]:
    """Queued aggregate refreshes as ``(id, start_ms, end_ms)``."""
    cur = await conn.execute("SELECT id, start_ts, end_ts FROM aggregate_refresh_queue ORDER BY id")
    return [(int(i), to_ms(s), to_ms(e)) for i, s, e in await cur.fetchall()]


async def forget_refreshes(conn: Connection, ids: Sequence[int]) -> None:
    """Remove refreshed queue rows."""
    await conn.execute("DELETE FROM aggregate_refresh_queue WHERE id = ANY(%s)", (list(ids),))


async def database_now_ms(conn: Connection) -> int:
    """The database's clock, in epoch milliseconds."""
    cur = await conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def refresh_aggregate(conn: Connection, view: str, start_ms: int, end_ms: int) -> None:
    """``CALL refresh_continuous_aggregate`` (``conn`` must be in autocommit mode)."""
    await conn.execute(
        "CALL refresh_continuous_aggregate(%s::regclass, %s, %s)",
        (view, to_dt(start_ms), to_dt(end_ms)),
    )
