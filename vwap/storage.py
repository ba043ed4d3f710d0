"""All SQL of the VWAP service (read-only, parameterized) against the processor's schema.

Window sums read whole buckets from ``trade_buckets_1d/1h/1m/10s`` and raw edges from ``trades``
in one statement, so the answer is one consistent snapshot whether the relations are plain
tables kept by triggers or TimescaleDB continuous aggregates with real-time aggregation (buckets
overlapping a range queued for a refresh, possibly stale there, are summed from ``trades``).

Pool connections are in autocommit mode: a single-statement read (a window) is one round trip
and sees one snapshot; reads of several statements run in a ``REPEATABLE READ, READ ONLY``
transaction (``BEGIN`` carries the isolation level, so it costs no extra round trip). Deadlines
are enforced client side (:func:`_within`): when one passes, the read's task is cancelled once
and psycopg cancels the query on the server, so no per-request ``statement_timeout`` is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import AsyncConnectionPool

from tradekit.domain import Trade
from tradekit.pools import RECONNECT_TIMEOUT_S
from vwap.errors import DeadlinePassed
from vwap.points import Sums
from vwap.ranges import Level, Piece
from vwap.series import Atom

Row: TypeAlias = tuple[Any, ...]
Connection: TypeAlias = psycopg.AsyncConnection[Row]
Pool: TypeAlias = AsyncConnectionPool[Connection]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


#: Longest wait of a request for a pooled connection: with the database away a call ends
#: UNAVAILABLE after this (psycopg_pool's default is 30 s).
CONNECTION_WAIT_S = 5.0


def open_pool(conninfo: str, *, min_size: int = 2, max_size: int = 20) -> Pool:
    """An unopened pool of autocommit connections whose transactions are ``REPEATABLE READ,
    READ ONLY``; use it as ``async with open_pool(...) as pool``."""
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=CONNECTION_WAIT_S,
        open=False,
        name="vwap",
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        kwargs={"autocommit": True},
        configure=_configure,
        # a connection the server cut while it sat in the pool (a restart) is replaced when
        # borrowed, not handed to a request that would fail UNAVAILABLE
        check=AsyncConnectionPool.check_connection,
    )


async def _configure(conn: Connection) -> None:
    # Only recorded on the connection (no round trip): used by the BEGIN of conn.transaction().
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)


async def _within(timeout_ms: int | None, work: Coroutine[Any, Any, T]) -> T:
    """The result of ``work`` (database calls), cancelled once ``timeout_ms`` passes (then
    DeadlinePassed; None: no limit) or when the caller is cancelled.

    psycopg answers a cancellation by cancelling the query on the server and waiting for it to
    stop; a second cancellation meanwhile (gRPC cancels a handler whose deadline passed, at
    about the same moment) makes it close the connection and leave the query running. So
    ``work`` runs in its own task, which this function cancels at most once and waits for.
    """
    if timeout_ms is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait((task,), timeout=max(1, timeout_ms) / 1000)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait((task,))
        if not task.cancelled():
            task.exception()  # mark it retrieved: the caller is gone, the outcome is moot
        raise
    if not done:
        task.cancel()
        await asyncio.wait((task,))
        if not task.cancelled():
            return task.result()  # finished (or failed) before the cancellation reached it
        raise DeadlinePassed("the deadline passed during the query")
    return task.result()


def dt_from_ms(ms: int) -> datetime:
    """The UTC datetime of ``ms`` milliseconds since the epoch (exact)."""
    return _EPOCH + timedelta(milliseconds=ms)


def ms_from_dt(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond part dropped)."""
    delta = value - _EPOCH
    return (delta.days * 86_400_000) + delta.seconds * 1000 + delta.microseconds // 1000


def _ms(value: datetime | None) -> int | None:
    return None if value is None else ms_from_dt(value)


@dataclass(frozen=True, slots=True)
class WindowRead:
    """Sums over a window with what the symbol's row says, read in one snapshot."""

    sums: Sums
    known: bool
    verified_until_ms: int | None
    #: Where the symbol's verified range begins (None: from its first trade).
    verified_from_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StoredTrade:
    """A stored trade with its provenance."""

    trade: Trade
    source: str
    verified: bool
    received_ms: int


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """The stored history of one symbol."""

    symbol: str
    first_ms: int
    last_ms: int
    verified_until_ms: int | None
    verified_from_ms: int | None = None


#: Whether the symbol is known: in ``symbols`` or with any trade. The trade probe is a scalar
#: subquery ordered like the primary key, so it is one index descent; an ``EXISTS`` there may be
#: planned as a sequential scan that reads every other symbol's rows first.
_KNOWN_SQL = """(
    EXISTS (SELECT 1 FROM symbols WHERE symbol = %(symbol)s)
    OR (SELECT true FROM trades WHERE symbol = %(symbol)s ORDER BY ts LIMIT 1) IS NOT NULL
)"""

#: TimescaleDB mode: whether a bucket piece ``[s, e)`` may hold stale aggregates: it overlaps a
#: range queued for a continuous-aggregate refresh. The processor queues the range of every
#: change it makes to time that may be materialised (corrections, late trades) in the
#: transaction making it and removes it once refreshed, so in one snapshot a bucket either is
#: fresh or overlaps a queued range, and a stale one is summed from the trades instead (its
#: atoms keyed by their bucket). The first test (is anything queued at all) runs once. Plain
#: mode keeps the aggregates exact in the same transaction and queues nothing: its statements
#: leave the test out.
_DIRTY = """(
    (SELECT EXISTS (SELECT 1 FROM aggregate_refresh_queue))
    AND EXISTS (SELECT 1 FROM aggregate_refresh_queue q WHERE q.start_ts < {e} AND q.end_ts > {s})
)"""

_PIECES_CTE = """
WITH r AS (
    SELECT p.level, p.s, p.e{dirty_column}
    FROM (
        SELECT p.level,
               (timestamp 'epoch' + (p.s / 86400000) * interval '1 day'
                   + (p.s %% 86400000) * interval '1 millisecond') AT TIME ZONE 'UTC' AS s,
               (timestamp 'epoch' + (p.e / 86400000) * interval '1 day'
                   + (p.e %% 86400000) * interval '1 millisecond') AT TIME ZONE 'UTC' AS e
        FROM unnest(%(levels)s::bigint[], %(starts)s::bigint[], %(ends)s::bigint[])
             AS p(level, s, e)
    ) AS p
), atoms AS (
    SELECT b.bucket AS key, b.notional, b.volume, b.trade_count AS n, r.level
    FROM trade_buckets_1d b JOIN r ON r.level = 86400000 AND b.bucket >= r.s AND b.bucket < r.e
    WHERE b.symbol = %(symbol)s{fresh}
    UNION ALL
    SELECT b.bucket, b.notional, b.volume, b.trade_count, r.level
    FROM trade_buckets_1h b JOIN r ON r.level = 3600000 AND b.bucket >= r.s AND b.bucket < r.e
    WHERE b.symbol = %(symbol)s{fresh}
    UNION ALL
    SELECT b.bucket, b.notional, b.volume, b.trade_count, r.level
    FROM trade_buckets_1m b JOIN r ON r.level = 60000 AND b.bucket >= r.s AND b.bucket < r.e
    WHERE b.symbol = %(symbol)s{fresh}
    UNION ALL
    SELECT b.bucket, b.notional, b.volume, b.trade_count, r.level
    FROM trade_buckets_10s b JOIN r ON r.level = 10000 AND b.bucket >= r.s AND b.bucket < r.e
    WHERE b.symbol = %(symbol)s{fresh}{stale_branch}
    UNION ALL
    SELECT t.ts, t.price * t.quantity, t.quantity, 1, r.level
    FROM trades t JOIN r ON r.level = 0 AND t.ts >= r.s AND t.ts < r.e
    WHERE t.symbol = %(symbol)s
)
"""

_STALE_BRANCH = """
    UNION ALL
    SELECT date_bin(r.level * interval '1 millisecond', t.ts, timestamptz 'epoch'),
           t.price * t.quantity, t.quantity, 1, r.level
    FROM trades t JOIN r ON r.dirty AND t.ts >= r.s AND t.ts < r.e
    WHERE t.symbol = %(symbol)s"""

_WINDOW_TAIL = (
    """
SELECT coalesce(sum(notional), 0), coalesce(sum(volume), 0), coalesce(sum(n), 0)::bigint,
       (SELECT verified_until FROM symbols WHERE symbol = %(symbol)s),
       """
    + _KNOWN_SQL
    + """,
       (SELECT verified_from FROM symbols WHERE symbol = %(symbol)s)
FROM atoms
"""
)

#: Many windows in one statement: ``symbols[i]`` over the pieces ``levels/starts/ends[lo[i]:
#: hi[i]]`` (1-based, inclusive). The same atoms as the single-window statement (whole buckets
#: of each level and raw trades, raw for a bucket piece that may be stale), read per piece
#: through a LATERAL join whose one branch matching the piece runs (the others stop at a
#: one-time filter), each an index range scan; the same exact NUMERIC sums. What the symbols'
#: rows say is read once per symbol (``k``). One row per window, in the order given.
_WINDOWS_SQL_TEMPLATE = """
WITH k AS MATERIALIZED (
    SELECT s.symbol,
           (SELECT y.verified_until FROM symbols y WHERE y.symbol = s.symbol) AS verified_until,
           (SELECT y.verified_from FROM symbols y WHERE y.symbol = s.symbol) AS verified_from,
           (
               EXISTS (SELECT 1 FROM symbols y WHERE y.symbol = s.symbol)
               OR (SELECT true FROM trades t WHERE t.symbol = s.symbol ORDER BY t.ts LIMIT 1)
                   IS NOT NULL
           ) AS known
    FROM (SELECT DISTINCT unnest(%(symbols)s::text[])) AS s(symbol)
)
SELECT w.i, x.notional, x.volume, x.n, k.verified_until, k.known, k.verified_from
FROM unnest(%(symbols)s::text[], %(lo)s::int[], %(hi)s::int[])
     WITH ORDINALITY AS w(symbol, lo, hi, i)
JOIN k ON k.symbol = w.symbol
CROSS JOIN LATERAL (
    SELECT coalesce(sum(a.notional), 0) AS notional, coalesce(sum(a.volume), 0) AS volume,
           coalesce(sum(a.n), 0)::bigint AS n
    FROM unnest(
        (%(levels)s::bigint[])[w.lo:w.hi],
        (%(starts)s::bigint[])[w.lo:w.hi],
        (%(ends)s::bigint[])[w.lo:w.hi]
    ) AS p(level, s, e)
    CROSS JOIN LATERAL (
        SELECT (timestamp 'epoch' + (p.s / 86400000) * interval '1 day'
                   + (p.s %% 86400000) * interval '1 millisecond') AT TIME ZONE 'UTC',
               (timestamp 'epoch' + (p.e / 86400000) * interval '1 day'
                   + (p.e %% 86400000) * interval '1 millisecond') AT TIME ZONE 'UTC'
    ) AS r(s, e){dirty_lateral}
    CROSS JOIN LATERAL (
        SELECT b.notional, b.volume, b.trade_count AS n FROM trade_buckets_1d b
        WHERE p.level = 86400000{fresh}
          AND b.symbol = w.symbol AND b.bucket >= r.s AND b.bucket < r.e
        UNION ALL
        SELECT b.notional, b.volume, b.trade_count FROM trade_buckets_1h b
        WHERE p.level = 3600000{fresh}
          AND b.symbol = w.symbol AND b.bucket >= r.s AND b.bucket < r.e
        UNION ALL
        SELECT b.notional, b.volume, b.trade_count FROM trade_buckets_1m b
        WHERE p.level = 60000{fresh}
          AND b.symbol = w.symbol AND b.bucket >= r.s AND b.bucket < r.e
        UNION ALL
        SELECT b.notional, b.volume, b.trade_count FROM trade_buckets_10s b
        WHERE p.level = 10000{fresh}
          AND b.symbol = w.symbol AND b.bucket >= r.s AND b.bucket < r.e
        UNION ALL
        SELECT t.price * t.quantity, t.quantity, 1 FROM trades t
        WHERE {raw_pieces} AND t.symbol = w.symbol AND t.ts >= r.s AND t.ts < r.e
    ) AS a
) AS x
ORDER BY w.i
"""

_ATOMS_TAIL = """
SELECT (extract(epoch FROM key) * 1000)::bigint, notional, volume, n, level FROM atoms
"""


@dataclass(frozen=True, slots=True)
class Statements:
    """The window-reading statements of one storage mode."""

    #: One window's sums and what the symbol's row says.
    window: str
    #: Many windows in one statement.
    windows: str
    #: The atoms (trades and whole buckets) of pieces, for series.
    atoms: str


def statements(*, stale_aware: bool) -> Statements:
    """The statements, summing possibly stale buckets from trades when ``stale_aware``
    (TimescaleDB mode) or trusting every bucket (plain mode, where triggers keep them exact)."""
    if stale_aware:
        pieces = _PIECES_CTE.format(
            dirty_column=", p.level > 0 AND " + _DIRTY.format(s="p.s", e="p.e") + " AS dirty",
            fresh=" AND NOT r.dirty",
            stale_branch=_STALE_BRANCH,
        )
        windows = _WINDOWS_SQL_TEMPLATE.format(
            dirty_lateral="\n    CROSS JOIN LATERAL (SELECT p.level > 0 AND "
            + _DIRTY.format(s="r.s", e="r.e")
            + ") AS d(dirty)",
            fresh=" AND NOT d.dirty",
            raw_pieces="(p.level = 0 OR d.dirty)",
        )
    else:
        pieces = _PIECES_CTE.format(dirty_column="", fresh="", stale_branch="")
        windows = _WINDOWS_SQL_TEMPLATE.format(dirty_lateral="", fresh="", raw_pieces="p.level = 0")
    return Statements(pieces + _WINDOW_TAIL, windows, pieces + _ATOMS_TAIL)


PLAIN = statements(stale_aware=False)
TIMESCALE = statements(stale_aware=True)

_SYMBOL_SQL = (
    """
SELECT (SELECT verified_until FROM symbols WHERE symbol = %(symbol)s), """
    + _KNOWN_SQL
    + """,
       (SELECT verified_from FROM symbols WHERE symbol = %(symbol)s)"""
)

_TRADES_FIRST_SQL = """
SELECT trade_id, ts, price, quantity, source, verified, received_at FROM trades
WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s
ORDER BY ts, trade_id LIMIT %(limit)s
"""

_TRADES_AFTER_SQL = """
SELECT trade_id, ts, price, quantity, source, verified, received_at FROM trades
WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s
  AND (ts, trade_id) > (%(after_ts)s, %(after_id)s)
ORDER BY ts, trade_id LIMIT %(limit)s
"""

# Candidates: the reconciled symbols and those with daily buckets (a TimescaleDB bucket may
# not be materialised yet: the symbols rows cover every symbol the processor ingests); those
# without a trade are left out below.
_SYMBOLS_SQL = """
WITH s AS (
    SELECT symbol FROM symbols
    UNION
    SELECT DISTINCT symbol FROM trade_buckets_1d WHERE trade_count > 0
)
SELECT s.symbol,
       (SELECT t.ts FROM trades t WHERE t.symbol = s.symbol ORDER BY t.ts LIMIT 1),
       (SELECT t.ts FROM trades t WHERE t.symbol = s.symbol ORDER BY t.ts DESC LIMIT 1),
       (SELECT y.verified_until FROM symbols y WHERE y.symbol = s.symbol),
       (SELECT y.verified_from FROM symbols y WHERE y.symbol = s.symbol)
FROM s ORDER BY s.symbol
"""

_HEAD_SQL = "SELECT seq FROM event_head"
# The publish time as the processor's event envelope has it (processor.event_log).
_HEAD_PUBLISHED_SQL = (
    "SELECT h.seq, (SELECT (extract(epoch FROM e.created_at) * 1000)::bigint"
    " FROM events e WHERE e.seq = h.seq) FROM event_head h"
)

_MODE_SQL = "SELECT mode FROM schema_migrations ORDER BY version LIMIT 1"

_VERIFIED_SQL = "SELECT verified_until, verified_from FROM symbols WHERE symbol = %(symbol)s"

_RECENT_SQL = """
SELECT trade_id, ts, price, quantity FROM trades
WHERE symbol = %(symbol)s
  AND ts >= (SELECT max(ts) FROM trades WHERE symbol = %(symbol)s)
            - %(span_ms)s * INTERVAL '1 millisecond'
ORDER BY ts, trade_id
"""


def _piece_params(symbol: str, pieces: Sequence[Piece]) -> dict[str, Any]:
    # Bounds travel as epoch milliseconds, dumped several times faster than datetimes. The SQL
    # turns them into timestamptz with integer arithmetic only (whole days on a timestamp
    # without time zone, so no DST; then milliseconds below 2**53 microseconds): exact.
    return {
        "symbol": symbol,
        "levels": [p.level.value for p in pieces],
        "starts": [p.start_ms for p in pieces],
        "ends": [p.end_ms for p in pieces],
    }


def _int_array(values: list[int]) -> str:
    """PostgreSQL's text form of an integer array: several times cheaper to send than a list,
    which psycopg dumps element by element."""
    return "{" + ",".join(map(str, values)) + "}"


def _windows_params(windows: Sequence[tuple[str, Sequence[Piece]]]) -> dict[str, Any]:
    symbols: list[str] = []
    lo: list[int] = []
    hi: list[int] = []
    levels: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for symbol, pieces in windows:
        symbols.append(symbol)
        lo.append(len(levels) + 1)
        for piece in pieces:
            levels.append(piece.level.value)
            starts.append(piece.start_ms)
            ends.append(piece.end_ms)
        hi.append(len(levels))
    return {
        "symbols": symbols,
        "lo": _int_array(lo),
        "hi": _int_array(hi),
        "levels": _int_array(levels),
        "starts": _int_array(starts),
        "ends": _int_array(ends),
    }


def _window_read(row: Row) -> WindowRead:
    _, notional, volume, count, verified_until, known, verified_from = row
    return WindowRead(
        Sums(Decimal(notional), Decimal(volume), int(count)),
        bool(known),
        _ms(verified_until),
        _ms(verified_from),
    )


class WindowLane:
    """One pool connection held across many batched window reads, one statement at a time.

    Borrowing a connection from the pool for every statement costs more Python than the
    statement itself (about 170 µs); a lane borrows once and reuses its connection and cursor.
    After a failure that leaves the connection broken or not idle (a cancellation cut through
    the query, a lost server) the connection goes back to the pool, which checks or discards
    it, and the next read borrows another. :meth:`close` gives it back; idempotent.
    """

    def __init__(self, pool: Pool, sql: Statements = PLAIN) -> None:
        self._pool = pool
        self._sql = sql
        self._conn: Connection | None = None
        self._cursor: psycopg.AsyncCursor[Row] | None = None

    async def windows(self, windows: Sequence[tuple[str, Sequence[Piece]]]) -> list[WindowRead]:
        """Like :meth:`VwapStore.windows`, on this lane's connection.

        A kept connection found broken (the server restarted or cut it while the lane was
        idle) is replaced and the read made once more on a fresh one: a read-only statement,
        and the batch's callers did nothing wrong."""
        params = _windows_params(windows)
        kept = self._conn is not None
        try:
            rows = await self._read(params)
        except psycopg.OperationalError:
            if not kept or self._conn is not None:  # a fresh connection failed, or a query did
                raise
            rows = await self._read(params)
        if len(rows) != len(windows):
            raise RuntimeError(f"{len(windows)} windows read as {len(rows)} rows")
        return [_window_read(row) for row in rows]

    async def _read(self, params: dict[str, Any]) -> list[Row]:
        if self._conn is None or self._cursor is None:
            self._conn = await self._pool.getconn()
            self._cursor = self._conn.cursor()
        cursor = self._cursor
        try:
            await cursor.execute(self._sql.windows, params, prepare=True)
            return await cursor.fetchall()
        except BaseException:
            conn = self._conn
            if conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await self.close()
            raise

    async def close(self) -> None:
        """Return the connection to the pool (if one is held)."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            await self._pool.putconn(conn)


class VwapStore:
    """Read-only queries over the processor's store; each call is one snapshot. ``sql`` are
    the window statements of the store's mode (:data:`PLAIN` or :data:`TIMESCALE`)."""

    def __init__(self, pool: Pool, sql: Statements = PLAIN) -> None:
        self._pool = pool
        self._sql = sql

    async def window(
        self, symbol: str, pieces: Sequence[Piece], *, timeout_ms: int | None = None
    ) -> WindowRead:
        """Sums over ``pieces`` plus the symbol's verified range and whether it is known."""
        params = _piece_params(symbol, pieces)

        async def read() -> Row | None:
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._sql.window, params, prepare=True)
                return await cur.fetchone()

        row = await _within(timeout_ms, read())
        assert row is not None
        return _window_read((None, *row))

    async def windows(self, windows: Sequence[tuple[str, Sequence[Piece]]]) -> list[WindowRead]:
        """Sums over each ``(symbol, pieces)`` window, in order, in one statement (one snapshot).

        No deadline here: the caller (:class:`vwap.batching.WindowBatcher`) owns the statement's
        task and cancels it when nobody waits for the answer any more.
        """
        params = _windows_params(windows)
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._sql.windows, params)
            rows = await cur.fetchall()
        if len(rows) != len(windows):
            raise RuntimeError(f"{len(windows)} windows read as {len(rows)} rows")
        return [_window_read(row) for row in rows]

    def lane(self) -> WindowLane:
        """A :class:`WindowLane` over this store's pool (close it when done)."""
        return WindowLane(self._pool, self._sql)

    async def atoms(
        self, symbol: str, pieces: Sequence[Piece], *, timeout_ms: int | None = None
    ) -> tuple[list[Atom], bool, int | None, int | None]:
        """Atoms (trades and whole buckets) of ``pieces``, whether the symbol is known, and its
        verified range (verified_until, verified_from), in one snapshot."""
        params = _piece_params(symbol, pieces)

        async def read() -> tuple[Row | None, list[Row]]:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_SYMBOL_SQL, {"symbol": symbol})
                head = await cur.fetchone()
                cur = await conn.execute(self._sql.atoms, params)
                return head, await cur.fetchall()

        head, rows = await _within(timeout_ms, read())
        assert head is not None
        atoms = [
            Atom(int(k), Sums(Decimal(n), Decimal(v), int(c)), Level(int(lv)))
            for k, n, v, c, lv in rows
        ]
        return atoms, bool(head[1]), _ms(head[0]), _ms(head[2])

    async def trades(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        *,
        after: tuple[int, int] | None,
        limit: int,
        timeout_ms: int | None = None,
    ) -> tuple[list[StoredTrade], bool]:
        """Up to ``limit`` trades in ``[start, end)`` after the key ``after`` (ts_ms, trade_id),
        in (ts, trade_id) order, and whether the symbol is known."""
        params: dict[str, Any] = {
            "symbol": symbol,
            "start": dt_from_ms(start_ms),
            "end": dt_from_ms(end_ms),
            "limit": limit,
        }
        sql = _TRADES_FIRST_SQL
        if after is not None:
            sql = _TRADES_AFTER_SQL
            params["after_ts"] = dt_from_ms(after[0])
            params["after_id"] = after[1]

        async def read() -> tuple[Row | None, list[Row]]:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_SYMBOL_SQL, {"symbol": symbol})
                head = await cur.fetchone()
                cur = await conn.execute(sql, params)
                return head, await cur.fetchall()

        head, rows = await _within(timeout_ms, read())
        assert head is not None
        result = [
            StoredTrade(
                Trade(symbol, int(tid), ms_from_dt(ts), Decimal(price), Decimal(qty)),
                str(source),
                bool(verified),
                ms_from_dt(received),
            )
            for tid, ts, price, qty, source, verified, received in rows
        ]
        return result, bool(head[1])

    async def symbols(self, *, timeout_ms: int | None = None) -> list[SymbolSummary]:
        """Symbols with stored trades, alphabetically, with first/last trade times."""

        async def read() -> list[Row]:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_SYMBOLS_SQL)
                return await cur.fetchall()

        rows = await _within(timeout_ms, read())
        return [
            SymbolSummary(str(sym), ms_from_dt(first), ms_from_dt(last), _ms(vu), _ms(vf))
            for sym, first, last, vu, vf in rows
            if first is not None
        ]

    async def storage_mode(self) -> str:
        """The mode the processor created the store in (``plain`` or ``timescale``)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_MODE_SQL)
            row = await cur.fetchone()
        if row is None:
            raise psycopg.errors.UndefinedTable("the store has no migration applied")
        return str(row[0])

    async def head(self) -> tuple[int, int | None]:
        """The newest committed event sequence (0 when none) and its publish time in ms, as the
        processor's events carry it (None when there is no event)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_HEAD_PUBLISHED_SQL)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), None if row[1] is None else int(row[1])

    async def recent_trades(
        self, symbol: str, span_ms: int
    ) -> tuple[int, list[Trade], int | None, int | None]:
        """In one snapshot: the event head sequence, the symbol's trades within ``span_ms``
        of its newest trade in (ts, trade_id) order, and its verified range: ``verified_until``
        (None when the symbol has no reconciliation position yet) and ``verified_from``."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_HEAD_SQL)
            head = await cur.fetchone()
            assert head is not None
            cur = await conn.execute(
                # milliseconds, not a timedelta: psycopg sends that with a days part, a
                # calendar day in the session's TimeZone (23 or 25 hours across DST)
                _RECENT_SQL,
                {"symbol": symbol, "span_ms": span_ms},
            )
            rows = await cur.fetchall()
            cur = await conn.execute(_VERIFIED_SQL, {"symbol": symbol})
            verified = await cur.fetchone()
        trades = [
            Trade(symbol, int(tid), ms_from_dt(ts), Decimal(p), Decimal(q))
            for tid, ts, p, q in rows
        ]
        until, start = (None, None) if verified is None else verified
        return int(head[0]), trades, _ms(until), _ms(start)
