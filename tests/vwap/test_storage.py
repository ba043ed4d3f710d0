"""VwapStore against a real database: snapshots, symbol probes and deadlines."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import psycopg
import pytest

from tests.vwap.support import insert_trades
from tradekit.domain import Trade
from vwap.errors import DeadlinePassed
from vwap.ranges import DAY_MS, HOUR_MS, MINUTE_MS, plan_pieces
from vwap.storage import PLAIN, TIMESCALE, Pool, VwapStore, dt_from_ms, open_pool

BASE = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a UTC midnight in Nov 2023


@pytest.fixture
async def pool(store_url: str) -> AsyncIterator[Pool]:
    """The VWAP service's pool over the fresh store, seeded with one BTC trade."""
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, [Trade("BTC", 1, BASE, Decimal(2), Decimal(3))])
        await conn.commit()
    async with open_pool(store_url, min_size=1, max_size=2) as opened:
        yield opened


async def _lock_waiters(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
    # A fresh view: within a transaction PostgreSQL keeps the first one of pg_stat_activity.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    cur = await conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND backend_type = 'client backend'"  # not autovacuum
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_window_reads_sums_and_knows_the_symbol(pool: Pool) -> None:
    """A window read returns exact sums and whether the symbol has trades."""
    store = VwapStore(pool)
    known = await store.window("BTC", plan_pieces(BASE, BASE + 1000), timeout_ms=5000)
    unknown = await store.window("ETH", plan_pieces(BASE, BASE + 1000))
    assert (known.sums.notional, known.sums.volume, known.sums.count) == (6, 3, 1)
    assert known.known
    assert not unknown.known
    assert unknown.sums.count == 0


async def test_a_trade_of_another_symbol_does_not_make_a_symbol_known(pool: Pool) -> None:
    """The trade probe looks at the asked symbol only."""
    store = VwapStore(pool)
    _, known, _, _ = await store.atoms("ETH", plan_pieces(BASE, BASE + DAY_MS))
    assert not known


async def test_multi_statement_reads_are_repeatable_read_and_read_only(pool: Pool) -> None:
    """Transactions on pool connections begin REPEATABLE READ, READ ONLY."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT current_setting('transaction_isolation'),"
            " current_setting('transaction_read_only')"
        )
        assert await cur.fetchone() == ("repeatable read", "on")


async def test_a_window_read_leaves_no_transaction_open(pool: Pool) -> None:
    """A single-statement read runs in autocommit: the connection is idle afterwards."""
    await VwapStore(pool).window("BTC", plan_pieces(BASE, BASE + 1000))
    async with pool.connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_blocked_read_is_cancelled_on_the_server_at_its_deadline(
    pool: Pool, store_url: str
) -> None:
    """DeadlinePassed when the deadline passes; the query stops waiting in the database."""
    store = VwapStore(pool)
    async with await psycopg.AsyncConnection.connect(store_url) as locker:
        await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DeadlinePassed):
            await store.window("BTC", plan_pieces(BASE, BASE + 1000), timeout_ms=200)
        assert await _lock_waiters(locker) == 0
        await locker.rollback()
    read = await store.window("BTC", plan_pieces(BASE, BASE + 1000), timeout_ms=5000)
    assert read.sums.count == 1


async def test_a_cancelled_caller_cancels_its_query_once_and_cleanly(
    pool: Pool, store_url: str
) -> None:
    """Cancelling the caller twice still cancels the query on the server, not just locally."""
    store = VwapStore(pool)
    async with await psycopg.AsyncConnection.connect(store_url) as locker:
        await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        caller = asyncio.create_task(
            store.window("BTC", plan_pieces(BASE, BASE + 1000), timeout_ms=60_000)
        )
        await asyncio.sleep(0.2)
        caller.cancel()
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0.3)
        assert await _lock_waiters(locker) == 0
        await locker.rollback()


@pytest.mark.parametrize(
    "ts_ms",
    [
        BASE + 1,
        10_413_792_000_123,  # 2300-01-01T00:00:00.123Z: beyond 2**53 microseconds
        253_402_300_799_999,  # the last millisecond of year 9999
    ],
)
async def test_window_bounds_are_exact_to_the_millisecond(store_url: str, ts_ms: int) -> None:
    """Bounds sent as epoch milliseconds select a trade exactly at any date."""
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, [Trade("SOL", 1, ts_ms, Decimal(2), Decimal(3))])
        await conn.commit()
    async with open_pool(store_url, min_size=1, max_size=1) as pool:
        store = VwapStore(pool)
        hit = await store.window("SOL", plan_pieces(ts_ms, ts_ms + 1))
        before = await store.window("SOL", plan_pieces(ts_ms - 1, ts_ms))
        after = await store.window("SOL", plan_pieces(ts_ms + 1, ts_ms + 2))
    assert hit.sums.count == 1
    assert before.sums.count == 0
    assert after.sums.count == 0


def _brute_sums(trades: list[Trade], symbol: str, start: int, end: int) -> tuple[Decimal, ...]:
    inside = [t for t in trades if t.symbol == symbol and start <= t.ts_ms < end]
    notional = sum((t.price * t.quantity for t in inside), Decimal(0))
    volume = sum((t.quantity for t in inside), Decimal(0))
    return notional, volume, Decimal(len(inside))


async def test_many_windows_in_one_statement_equal_the_brute_force(store_url: str) -> None:
    """windows() answers each window, in order, exactly as a Decimal brute force (with scale)."""
    rng = random.Random(7)
    trades = [
        Trade(
            rng.choice(("BTC", "ETH")),
            n,
            BASE + rng.randrange(-DAY_MS, 2 * DAY_MS),
            Decimal(rng.randrange(1, 10**6)).scaleb(-rng.randint(0, 6)),
            Decimal(rng.randrange(1, 10**4)).scaleb(-rng.randint(0, 8)),
        )
        for n in range(1, 3001)
    ]
    burst = BASE + HOUR_MS
    trades += [Trade("BTC", 10**6 + k, burst, Decimal("1.50"), Decimal(2)) for k in range(3)]
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, trades)
        await conn.execute(
            "INSERT INTO symbols (symbol, verified_until) VALUES ('BTC', %s), ('SOL', %s)",
            (dt_from_ms(BASE), dt_from_ms(BASE + 1)),
        )
        await conn.commit()
    windows: list[tuple[str, int, int]] = [("BTC", BASE + HOUR_MS, BASE + HOUR_MS + 1)]
    for _ in range(150):
        start = BASE + rng.randrange(-2 * DAY_MS, 3 * DAY_MS)
        length = rng.randint(1, rng.choice((1000, MINUTE_MS, HOUR_MS, DAY_MS, 3 * DAY_MS)))
        windows.append((rng.choice(("BTC", "ETH", "SOL", "XRP")), start, start + length))
    async with open_pool(store_url, min_size=1, max_size=1) as pool:
        reads = await VwapStore(pool).windows([(s, plan_pieces(a, b)) for s, a, b in windows])
    assert len(reads) == len(windows)
    for (symbol, start, end), read in zip(windows, reads, strict=True):
        expected = _brute_sums(trades, symbol, start, end)
        got = (read.sums.notional, read.sums.volume, Decimal(read.sums.count))
        assert got == expected, (symbol, start, end)
        assert [g.as_tuple().exponent for g in got] == [e.as_tuple().exponent for e in expected]
        assert read.known == (symbol != "XRP")  # SOL: known from the symbols table only
        assert read.verified_until_ms == {"BTC": BASE, "SOL": BASE + 1}.get(symbol)
    assert reads[0].sums.count == 3
    assert sum(1 for r in reads if r.sums.count == 0) > 10
    assert max(r.sums.count for r in reads) > 500


async def test_buckets_queued_for_refresh_are_summed_from_trades(store_url: str) -> None:
    """TimescaleDB mode's statements do not trust aggregates that may be stale (their range
    queued for a refresh until the processor has done it): single, batched and atom reads sum
    those buckets from the trades; other buckets are read as stored. The stale rows are made by
    hand here (plain mode keeps them exact, and its statements, which skip the check, read
    them), so the test sees which rows were read."""
    trades = [
        Trade("BTC", n, BASE + n * 7_001, Decimal(n).scaleb(-2) + 1, Decimal(n % 7 + 1))
        for n in range(1, 2000)
    ]
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, trades)
        for table in ("trade_buckets_10s", "trade_buckets_1m_state", "trade_buckets_1h"):
            await conn.execute(f"UPDATE {table} SET notional = notional + 1000000")
        await conn.execute(
            "INSERT INTO aggregate_refresh_queue (start_ts, end_ts) VALUES (%s, %s)",
            (dt_from_ms(BASE), dt_from_ms(BASE + 3 * HOUR_MS)),
        )
        await conn.commit()
    inside = (BASE + 1_234, BASE + 2 * HOUR_MS + 59 * MINUTE_MS + 17)  # every level
    later = (BASE + 3 * HOUR_MS, BASE + 3 * HOUR_MS + 50 * MINUTE_MS)  # not queued
    async with open_pool(store_url, min_size=1, max_size=1) as pool:
        store = VwapStore(pool, TIMESCALE)
        single = await store.window("BTC", plan_pieces(*inside))
        trusting = await VwapStore(pool, PLAIN).window("BTC", plan_pieces(*inside))
        batched = await store.windows([("BTC", plan_pieces(*w)) for w in (inside, later)])
        atoms, _, _, _ = await store.atoms("BTC", plan_pieces(*inside))
    expected = _brute_sums(trades, "BTC", *inside)
    for read in (single, batched[0]):
        assert (read.sums.notional, read.sums.volume, Decimal(read.sums.count)) == expected
    atom_total = (
        sum((a.sums.notional for a in atoms), Decimal(0)),
        sum((a.sums.volume for a in atoms), Decimal(0)),
        Decimal(sum(a.sums.count for a in atoms)),
    )
    assert atom_total == expected
    assert {a.level for a in atoms} == {p.level for p in plan_pieces(*inside)}  # bucket-shaped
    stale = batched[1].sums.notional - _brute_sums(trades, "BTC", *later)[0]
    assert stale > 1_000_000  # outside the queued range, the (made up) stored rows are read
    assert trusting.sums.notional - expected[0] > 1_000_000
