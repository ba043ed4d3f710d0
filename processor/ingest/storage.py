"""SQL of the ingest: one transaction per batch, the dedup seed and the restart gap anchor.

A batch transaction inserts the new trades (``source='ws'``, ``verified=false``) skipping any
``(symbol, trade_id)`` already stored and any trade older than its symbol's ``verified_until``
(that range already equals REST, the source of truth; a late frame must not reopen it), the
quarantined frames and the feed gaps, then appends exactly one ``TradeEvent`` per trade really
inserted, last, as :func:`append_events` requires. A batch written with a :class:`BatchKey`
records its counts in ``ingest_commits`` in the same transaction, so a writer that lost its
connection while committing can ask :func:`committed_counts` whether the batch landed instead of
writing its quarantined frames and gaps twice. In TimescaleDB mode a trade stored late
enough to fall in a bucket the aggregate policies may have materialised has its range queued
for a refresh in the same transaction: readers sum such buckets from the trades until the
reconciler has refreshed them (see ``vwap.storage``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from processor.db import Connection
from processor.event_log import append_events
from processor.ingest.records import Gap, Quarantined, Received
from processor.trade_lock import lock_symbol_trades

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

INSERT_TRADES_SQL = """
WITH newest AS MATERIALIZED (
SELECT s.symbol, (SELECT max(t.trade_id) FROM trades t WHERE t.symbol = s.symbol) AS max_id
FROM unnest(%s::text::text[]) AS s(symbol)
),
inserted AS (
INSERT INTO trades (symbol, trade_id, ts, price, quantity, source, verified, received_at)
SELECT i.symbol, i.trade_id, timestamptz 'epoch' + i.ts_ms * interval '1 millisecond',
       i.price, i.quantity, 'ws', false,
       timestamptz 'epoch' + i.received_ms * interval '1 millisecond'
FROM unnest(%s::text::text[], %s::text::bigint[], %s::text::bigint[], %s::text::numeric[],
            %s::text::numeric[], %s::text::bigint[])
     AS i(symbol, trade_id, ts_ms, price, quantity, received_ms)
JOIN newest n ON n.symbol = i.symbol
WHERE CASE
    WHEN n.max_id IS NULL OR i.trade_id > n.max_id THEN true  -- above every stored id
    ELSE (SELECT false FROM trades t
          WHERE t.symbol = i.symbol AND t.trade_id = i.trade_id LIMIT 1) IS NULL
END
AND NOT EXISTS (
    SELECT 1 FROM symbols v
    WHERE v.symbol = i.symbol
    AND timestamptz 'epoch' + i.ts_ms * interval '1 millisecond' < v.verified_until
)
ON CONFLICT DO NOTHING
RETURNING symbol, trade_id
)
SELECT count(*),
       CASE WHEN count(*) < %s THEN array_agg(symbol) END,
       CASE WHEN count(*) < %s THEN array_agg(trade_id) END
FROM inserted
"""

INSERT_QUARANTINE_SQL = """
INSERT INTO quarantine (received_at, payload, error)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[])
"""

QUEUE_REFRESH_SQL = "INSERT INTO aggregate_refresh_queue (start_ts, end_ts) VALUES (%s, %s)"

#: The finest aggregate's bucket width (TimescaleDB mode): a refresh policy materialises whole
#: buckets only.
FINEST_BUCKET_MS = 10_000
#: Longest expected time from the staleness check (made once the trades lock is held) to the
#: batch's COMMIT; a policy refresh within it must not miss a trade of the batch unqueued.
COMMIT_MARGIN_MS = 5_000


def materialised_cutoff(now_ms: int, lag_ms: int) -> int:
    """Trades before this instant may lie in a bucket a refresh policy (``end_offset`` of
    ``lag_ms``) materialises before the batch commits, by ``now_ms + COMMIT_MARGIN_MS``: their
    finest bucket ends at or before ``now + margin - lag``. Later trades' buckets cannot be
    materialised by then, so the policy will include them (pure)."""
    edge = now_ms + COMMIT_MARGIN_MS - lag_ms
    return edge - edge % FINEST_BUCKET_MS


INSERT_GAPS_SQL = """
INSERT INTO feed_gaps (start_ts, end_ts, reason)
SELECT * FROM unnest(%s::timestamptz[], %s::timestamptz[], %s::text[])
"""

RECORD_COMMIT_SQL = """
INSERT INTO ingest_commits AS c (writer, batch, inserted, conflicts, quarantined, gaps)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (writer) DO UPDATE
SET batch = EXCLUDED.batch, inserted = EXCLUDED.inserted, conflicts = EXCLUDED.conflicts,
    quarantined = EXCLUDED.quarantined, gaps = EXCLUDED.gaps, committed_at = now()
"""

PRUNE_COMMITS_SQL = """
DELETE FROM ingest_commits WHERE writer <> %s AND committed_at < now() - interval '7 days'
"""

# The row is created first so that the lock below also waits for a first batch whose commit is
# still in flight (ON CONFLICT waits for an uncommitted conflicting insert).
CLAIM_WRITER_SQL = """
INSERT INTO ingest_commits (writer, batch, inserted, conflicts, quarantined, gaps)
VALUES (%s, 0, 0, 0, 0, 0) ON CONFLICT (writer) DO NOTHING
"""

LOCK_WRITER_SQL = """
SELECT batch, inserted, conflicts, quarantined, gaps FROM ingest_commits
WHERE writer = %s FOR UPDATE
"""

NEWEST_IDS_SQL = """
SELECT trade_id FROM trades WHERE symbol = %s ORDER BY ts DESC, trade_id DESC LIMIT %s
"""

NEWEST_WS_TRADE_SQL = """
SELECT ts, received_at FROM trades
WHERE symbol = %s AND source = 'ws' ORDER BY ts DESC, trade_id DESC LIMIT 1
"""


#: How late the newest stored feed trades of a symbol arrived (received_at - ts, in ms).
FEED_LAGS_SQL = """
SELECT ts, received_at FROM trades
WHERE symbol = %s AND source = 'ws' ORDER BY ts DESC, trade_id DESC LIMIT %s
"""


async def recent_feed_lags(conn: Connection, symbols: Iterable[str], limit: int) -> list[int]:
    """``received - ts`` in ms of the newest ``limit`` stored feed trades of ``symbols``, oldest
    first (what the provider clock knew before a restart)."""
    newest: list[tuple[int, int]] = []
    for symbol in symbols:
        cur = await conn.execute(FEED_LAGS_SQL, (symbol, limit))
        for ts, received_at in await cur.fetchall():
            ts_ms = ms_from_datetime(ts)
            newest.append((ts_ms, ms_from_datetime(received_at) - ts_ms))
    newest.sort()
    return [lag for _, lag in newest[-limit:]] if limit > 0 else []


def datetime_from_ms(ms: int) -> datetime:
    """The UTC instant ``ms`` milliseconds after the epoch (exact, no float)."""
    return EPOCH + timedelta(milliseconds=ms)


def ms_from_datetime(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (exact, truncated to the millisecond)."""
    return (value - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class BatchKey:
    """Names one batch of one writer: ``number`` counts the writer's batches from 1."""

    writer: UUID
    number: int


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """How many trades one committed batch inserted and dropped as already stored, and how many
    quarantined frames and gaps it wrote."""

    inserted: int
    conflicts: int
    quarantined: int
    gaps: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch changed."""

    inserted: list[Received]
    conflicts: int
    quarantined: int
    gaps: int

    def counts(self) -> BatchCounts:
        """The result as counts."""
        return BatchCounts(len(self.inserted), self.conflicts, self.quarantined, self.gaps)


def _array_literal(items: Iterable[object]) -> str:
    """A PostgreSQL array literal of numbers (ints or finite Decimals: their ``str``, as
    psycopg sends them), built as one string: adapting six arrays element by element costs
    more than the insert itself."""
    return "{" + ",".join(map(str, items)) + "}"


def _quoted(symbol: str) -> str:
    """``symbol`` as a double-quoted array element."""
    return '"' + symbol.replace("\\", "\\\\").replace('"', '\\"') + '"'


def trade_arrays(trades: Sequence[Received]) -> tuple[str, str, str, str, str, str, str]:
    """The array parameters of :data:`INSERT_TRADES_SQL`: the distinct symbols, then the
    symbols, ids, epoch-ms times, prices, quantities and epoch-ms arrival times of ``trades``,
    each a text array literal."""
    quoted: dict[str, str] = {}
    symbols: list[str] = []
    for item in trades:
        symbol = item.trade.symbol
        text = quoted.get(symbol)
        if text is None:
            text = quoted[symbol] = _quoted(symbol)
        symbols.append(text)
    return (
        "{" + ",".join(quoted.values()) + "}",
        "{" + ",".join(symbols) + "}",
        _array_literal(item.trade.trade_id for item in trades),
        _array_literal(item.trade.ts_ms for item in trades),
        _array_literal(item.trade.price for item in trades),
        _array_literal(item.trade.quantity for item in trades),
        _array_literal(item.received_ms for item in trades),
    )


def unique_trades(received: Sequence[Received]) -> tuple[list[Received], int]:
    """The first of each ``(symbol, trade_id)`` in ``received``, and how many were dropped."""
    seen: set[tuple[str, int]] = set()
    unique: list[Received] = []
    for item in received:
        key = (item.trade.symbol, item.trade.trade_id)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique, len(received) - len(unique)


async def write_batch(
    conn: Connection,
    received: Sequence[Received],
    quarantined: Sequence[Quarantined],
    gaps: Sequence[Gap],
    *,
    stale_before: Callable[[], int] | None = None,
    key: BatchKey | None = None,
) -> BatchResult:
    """Write one batch in one transaction; every trade really inserted gets one event. Inserted
    trades older than ``stale_before()`` (TimescaleDB mode, asked once the trades lock is held,
    see :func:`materialised_cutoff`; None: plain) have their range queued for an aggregate
    refresh. With ``key``, the batch's counts are recorded as its
    writer's last commit."""
    trades, repeated = unique_trades(received)
    inserted: list[Received] = []
    async with conn.transaction():
        cur = conn.cursor()
        if trades:
            await lock_symbol_trades(conn, {item.trade.symbol for item in trades})
            total = len(trades)
            await cur.execute(INSERT_TRADES_SQL, (*trade_arrays(trades), total, total))
            row = await cur.fetchone()
            assert row is not None
            count, symbols, trade_ids = row
            if count == total:  # the common case: no row per trade to send and convert
                inserted = list(trades)
            else:
                keys = set(zip(symbols or (), trade_ids or (), strict=True))
                inserted = [t for t in trades if (t.trade.symbol, t.trade.trade_id) in keys]
        if quarantined:
            await cur.execute(
                INSERT_QUARANTINE_SQL,
                (
                    [datetime_from_ms(q.received_ms) for q in quarantined],
                    [q.payload for q in quarantined],
                    [q.error for q in quarantined],
                ),
            )
        if gaps:
            await cur.execute(
                INSERT_GAPS_SQL,
                (
                    [datetime_from_ms(g.start_ms) for g in gaps],
                    [datetime_from_ms(g.end_ms) for g in gaps],
                    [g.reason for g in gaps],
                ),
            )
        if stale_before is not None and inserted:
            cutoff = stale_before()
            late = [t.trade.ts_ms for t in inserted if t.trade.ts_ms < cutoff]
            if late:
                await cur.execute(
                    QUEUE_REFRESH_SQL,
                    (datetime_from_ms(min(late)), datetime_from_ms(max(late) + 1)),
                )
        if inserted:
            await append_events(conn, [t.event for t in inserted])
        result = BatchResult(
            inserted=inserted,
            conflicts=repeated + len(trades) - len(inserted),
            quarantined=len(quarantined),
            gaps=len(gaps),
        )
        if key is not None:
            counts = result.counts()
            await cur.execute(
                RECORD_COMMIT_SQL,
                (
                    key.writer,
                    key.number,
                    counts.inserted,
                    counts.conflicts,
                    counts.quarantined,
                    counts.gaps,
                ),
            )
            if key.number == 1:
                await cur.execute(PRUNE_COMMITS_SQL, (key.writer,))
    return result


async def committed_counts(conn: Connection, key: BatchKey) -> BatchCounts | None:
    """The counts of batch ``key`` if its writer's last commit is that batch, else None. Call it
    in the transaction that writes the batch again: it locks the writer's row until that
    transaction ends, so a commit of the batch still in flight is waited for, never missed."""
    await conn.execute(CLAIM_WRITER_SQL, (key.writer,))
    cur = await conn.execute(LOCK_WRITER_SQL, (key.writer,))
    row = await cur.fetchone()
    assert row is not None  # claimed just above
    number, inserted, conflicts, quarantined, gaps = row
    if number != key.number:
        return None
    return BatchCounts(inserted, conflicts, quarantined, gaps)


async def newest_trade_ids(conn: Connection, symbol: str, limit: int) -> list[int]:
    """Up to ``limit`` ids of the newest stored trades of ``symbol``, oldest first."""
    cur = await conn.execute(NEWEST_IDS_SQL, (symbol, limit))
    return [int(row[0]) for row in reversed(await cur.fetchall())]


async def newest_ws_trade_ms(conn: Connection, lanes: Sequence[Sequence[str]]) -> int | None:
    """Up to when every writer lane had committed what it received: per lane, when its newest
    stored feed trade was made or received (whichever is earlier, the latest over the lane's
    symbols); then the earliest over the lanes that stored any. None when none did.

    A lane writes its records in the order they were read, so everything it read before its
    newest stored trade is stored; lanes commit independently, so a killed process may have
    left one lane behind another. The lanes are this run's: when ``INGEST_WRITERS`` changed
    between runs the gap may start a little late or early, which costs nothing but order, as
    reconciliation verifies every window whether a gap covers it or not (gaps go first)."""
    earliest: int | None = None
    for symbols in lanes:
        newest: int | None = None
        for symbol in symbols:
            cur = await conn.execute(NEWEST_WS_TRADE_SQL, (symbol,))
            row = await cur.fetchone()
            if row is None:
                continue
            ts: datetime = row[0]
            received_at: datetime = row[1]
            moment = min(ms_from_datetime(ts), ms_from_datetime(received_at))
            newest = moment if newest is None else max(newest, moment)
        if newest is not None:
            earliest = newest if earliest is None else min(earliest, newest)
    return earliest
