"""The TimescaleDB storage mode, run for real (TimescaleDB 2.23 in PGlite), against plain mode.

The project's own TimescaleDB migrations are applied to PGlite; the same deterministic trades go
into PGlite and into a real PostgreSQL migrated in plain mode. The aggregates (1-minute, hour and
day candles, 10-second sums) must be identical in both modes and equal to a Python ``Decimal``
brute force, before and after corrections (UPDATE, DELETE, late INSERT), once the continuous
aggregates are refreshed bottom-up; and a database holding trades before the 10-second level
existed gets that level exact on upgrade, in both modes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import psycopg
import pytest

from devstack.pglite import PgliteTimescale, unavailable_reason
from processor.schema import MIGRATIONS_DIR, StorageMode, migrate, migrations_for

# Only Node itself is required here: PgliteTimescale installs the pinned npm package on first
# start (a fresh clone has no node_modules yet when this module is collected).
pytestmark = pytest.mark.skipif(
    unavailable_reason(need_installed=False) is not None,
    reason=f"PGlite/TimescaleDB bridge unavailable: {unavailable_reason(need_installed=False)}",
)

BASE = datetime(2024, 3, 8, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TEN_SECONDS = timedelta(seconds=10)
#: Candle levels (sums, count and OHLC).
LEVELS = {"trade_buckets_1m": MINUTE, "trade_buckets_1h": HOUR, "trade_buckets_1d": DAY}
#: The sums-only level under them.
FINE = "trade_buckets_10s"
SYMBOLS = {"BTC-USD": Decimal(64000), "ETH-USD": Decimal(3100), "DOGE-USD": Decimal("0.16")}
COLUMNS = "symbol, trade_id, ts, price, quantity, source"


@dataclass(frozen=True)
class Trade:
    symbol: str
    trade_id: int
    ts: datetime
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True)
class Candle:
    notional: Decimal
    volume: Decimal
    trade_count: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


Candles = dict[tuple[str, datetime], Candle]


def _decimal(rng: random.Random, around: Decimal) -> Decimal:
    """A positive decimal near ``around`` with a random scale (0..12, trailing zeros kept)."""
    scale = rng.randint(0, 12)
    units = int(around * rng.randint(900, 1100) * 10**scale / 1000)
    return Decimal(max(units, 1)).scaleb(-scale)


def _make_trades(seed: int) -> list[Trade]:
    """Trades over three days: a few hours a day, a few minutes an hour, same-ms bursts."""
    rng = random.Random(seed)
    ids: set[int] = set()
    trades: list[Trade] = []
    for symbol, price in SYMBOLS.items():
        for day in range(3):
            for hour in rng.sample(range(24), 3):
                for minute in rng.sample(range(60), 3):
                    start = BASE + day * DAY + hour * HOUR + minute * MINUTE
                    offsets = sorted(rng.sample(range(60_000), rng.randint(2, 4)))
                    for offset in offsets:
                        for _ in range(rng.choice((1, 2, 3))):
                            trade_id = rng.randint(1, 9 * 10**18)
                            while trade_id in ids:
                                trade_id = rng.randint(1, 9 * 10**18)
                            ids.add(trade_id)
                            trades.append(
                                Trade(
                                    symbol,
                                    trade_id,
                                    start + timedelta(milliseconds=offset),
                                    _decimal(rng, price),
                                    _decimal(rng, Decimal(2)),
                                )
                            )
    rng.shuffle(trades)
    return trades


def _floor(ts: datetime, width: timedelta) -> datetime:
    """The UTC-aligned bucket of ``ts`` (as time_bucket and date_bin from 2000-01-03)."""
    epoch = datetime(2000, 1, 3, tzinfo=UTC)
    return epoch + ((ts - epoch) // width) * width


def _brute_force(trades: Iterable[Trade], width: timedelta) -> Candles:
    """Exact candles in Python Decimal; open/close by (ts, trade_id)."""
    groups: dict[tuple[str, datetime], list[Trade]] = {}
    for t in sorted(trades, key=lambda t: (t.ts, t.trade_id)):
        groups.setdefault((t.symbol, _floor(t.ts, width)), []).append(t)
    out: Candles = {}
    with localcontext() as ctx:
        ctx.prec = 200
        for key, group in groups.items():
            out[key] = Candle(
                notional=sum((t.price * t.quantity for t in group), Decimal(0)),
                volume=sum((t.quantity for t in group), Decimal(0)),
                trade_count=len(group),
                open=group[0].price,
                high=max(t.price for t in group),
                low=min(t.price for t in group),
                close=group[-1].price,
            )
    return out


def _scaled(value: Decimal) -> tuple[Decimal, int | str]:
    return value, value.as_tuple().exponent


def _exact(candles: Candles) -> dict[tuple[str, datetime], tuple[object, ...]]:
    """Candles with sums, open and close paired with their scale, so 1.5 and 1.50 differ.

    high/low compare by value only: among equal prices written with different scales,
    PostgreSQL's max()/min() may return either.
    """
    return {
        key: (
            _scaled(c.notional),
            _scaled(c.volume),
            c.trade_count,
            _scaled(c.open),
            c.high,
            c.low,
            _scaled(c.close),
        )
        for key, c in candles.items()
    }


def _select(view: str) -> str:
    return (
        "SELECT symbol, bucket, notional, volume, trade_count, open, high, low, close "
        f"FROM {view} ORDER BY symbol, bucket"
    )


def _pglite_candles(db: PgliteTimescale, view: str) -> Candles:
    out: Candles = {}
    for symbol, bucket, *values in db.query(_select(view)):
        assert symbol is not None
        assert bucket is not None
        assert all(v is not None for v in values)
        notional, volume, count, open_, high, low, close = (str(v) for v in values)
        out[(symbol, datetime.fromisoformat(bucket))] = Candle(
            Decimal(notional),
            Decimal(volume),
            int(count),
            Decimal(open_),
            Decimal(high),
            Decimal(low),
            Decimal(close),
        )
    return out


async def _plain_candles(conn: psycopg.AsyncConnection[tuple[object, ...]], view: str) -> Candles:
    cur = await conn.execute(_select(view))
    out: Candles = {}
    for symbol, bucket, *values in await cur.fetchall():
        assert isinstance(symbol, str)
        assert isinstance(bucket, datetime)
        out[(symbol, bucket)] = Candle(*values)  # type: ignore[arg-type]
    return out


def _values_sql(rows: int, placeholder: str) -> str:
    """``INSERT INTO trades`` with ``rows`` six-column VALUES tuples of placeholders."""
    if placeholder == "$":
        tuples = ("(" + ", ".join(f"${6 * r + c}" for c in range(1, 7)) + ")" for r in range(rows))
    else:
        tuples = ("(%s, %s, %s, %s, %s, %s)" for _ in range(rows))
    return f"INSERT INTO trades ({COLUMNS}) VALUES " + ", ".join(tuples)


def _chunks(trades: Sequence[Trade], size: int = 250) -> Iterator[Sequence[Trade]]:
    for i in range(0, len(trades), size):
        yield trades[i : i + size]


def _pglite_insert(db: PgliteTimescale, trades: Sequence[Trade]) -> None:
    for chunk in _chunks(trades):
        params: list[str | None] = []
        for t in chunk:
            params += [
                t.symbol,
                str(t.trade_id),
                t.ts.isoformat(),
                format(t.price, "f"),
                format(t.quantity, "f"),
                "rest",
            ]
        db.query(_values_sql(len(chunk), "$"), params)


async def _plain_insert(
    conn: psycopg.AsyncConnection[tuple[object, ...]], trades: Sequence[Trade]
) -> None:
    for chunk in _chunks(trades):
        params: list[object] = []
        for t in chunk:
            params += [t.symbol, t.trade_id, t.ts, t.price, t.quantity, "rest"]
        await conn.execute(_values_sql(len(chunk), "%"), params)


def _refresh(db: PgliteTimescale, affected: Iterable[datetime], *, fine: bool = True) -> None:
    """Refresh 10s (unless ``fine`` is false), 1m, then 1h, then 1d over the affected range
    aligned to each level's buckets."""
    times = list(affected)
    for view, width in ((FINE, TEN_SECONDS), *LEVELS.items())[0 if fine else 1 :]:
        start = _floor(min(times), width)
        end = _floor(max(times), width) + width
        db.query(
            "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)",
            [view, start.isoformat(), end.isoformat()],
        )


@pytest.fixture
def timescale_v2() -> Iterator[PgliteTimescale]:
    """PGlite + TimescaleDB with the TimescaleDB migrations up to version 2 only."""
    with PgliteTimescale() as db:
        for migration in migrations_for(StorageMode.TIMESCALE):
            if migration.version <= 2:
                db.execute_script(migration.sql)
        yield db


@pytest.fixture
async def plain(database_url: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """An autocommit connection to a fresh PostgreSQL database migrated in plain mode."""
    assert await migrate(database_url, "plain") is StorageMode.PLAIN
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await conn.execute("SET TimeZone = 'UTC'")
    try:
        yield conn  # type: ignore[misc]
    finally:
        await conn.close()


def test_trades_is_a_hypertable_with_realtime_caggs_and_policies(
    timescale: PgliteTimescale,
) -> None:
    """The migrations make trades a hypertable, four real-time caggs, and their policies (the
    10-second one from the first trade on, so its first run materialises the whole history)."""
    assert timescale.query(
        "SELECT hypertable_name FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = 'public'"
    ) == [("trades",)]
    assert timescale.query(
        "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates "
        "ORDER BY view_name"
    ) == [
        ("trade_buckets_10s", "f"),
        ("trade_buckets_1d", "f"),
        ("trade_buckets_1h", "f"),
        ("trade_buckets_1m", "f"),
    ]
    assert timescale.query(
        "SELECT hypertable_name, schedule_interval::text, config->>'start_offset', "
        "  config->>'end_offset', scheduled "
        "FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY hypertable_name"
    ) == [
        ("trade_buckets_10s", "00:01:00", None, "00:00:10", "t"),
        ("trade_buckets_1d", "01:00:00", "7 days", "1 day", "t"),
        ("trade_buckets_1h", "00:10:00", "1 day", "01:00:00", "t"),
        ("trade_buckets_1m", "00:01:00", "02:00:00", "00:01:00", "t"),
    ]


_COLUMNS_SQL = (
    "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
    "  i.data_type "
    "FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
    "JOIN information_schema.columns i "
    "  ON i.table_schema = n.nspname AND i.table_name = c.relname AND i.column_name = a.attname "
    "WHERE c.relname IN "
    "  ('trade_buckets_10s', 'trade_buckets_1m', 'trade_buckets_1h', 'trade_buckets_1d') "
    "  AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY c.relname, a.attnum"
)


async def test_relations_have_identical_columns_in_both_modes(
    timescale: PgliteTimescale, plain: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """trade_buckets_10s/1m/1h/1d have the same column names, order and types in both modes."""
    expected = [
        ("symbol", "text", "text"),
        ("bucket", "timestamp with time zone", "timestamp with time zone"),
        ("notional", "numeric", "numeric"),
        ("volume", "numeric", "numeric"),
        ("trade_count", "bigint", "bigint"),
        ("open", "numeric", "numeric"),
        ("high", "numeric", "numeric"),
        ("low", "numeric", "numeric"),
        ("close", "numeric", "numeric"),
    ]
    cur = await plain.execute(_COLUMNS_SQL)
    plain_rows = [tuple(str(v) for v in row) for row in await cur.fetchall()]
    timescale_rows = timescale.query(_COLUMNS_SQL)
    assert timescale_rows == plain_rows
    for view in LEVELS:
        columns = [tuple(row[2:]) for row in timescale_rows if row[0] == view]
        assert columns == expected, view
    fine_columns = [tuple(row[2:]) for row in timescale_rows if row[0] == FINE]
    assert fine_columns == expected[:5]


def _ties_decide_open_or_close(trades: Sequence[Trade]) -> int:
    """How many minute buckets open or close on a same-ms burst with differing prices."""
    by_minute: dict[tuple[str, datetime], list[Trade]] = {}
    for t in trades:
        by_minute.setdefault((t.symbol, _floor(t.ts, MINUTE)), []).append(t)
    decided = 0
    for group in by_minute.values():
        for edge in (min(t.ts for t in group), max(t.ts for t in group)):
            prices = {t.price for t in group if t.ts == edge}
            decided += len(prices) > 1
    return decided


FineSums = dict[tuple[str, datetime], tuple[object, ...]]

_FINE_SQL = f"SELECT symbol, bucket, notional, volume, trade_count FROM {FINE} ORDER BY 1, 2"


def _fine_expected(trades: Iterable[Trade]) -> FineSums:
    """Exact 10-second sums (with their scales) and counts."""
    return {
        key: (_scaled(c.notional), _scaled(c.volume), c.trade_count)
        for key, c in _brute_force(trades, TEN_SECONDS).items()
    }


def _pglite_fine(db: PgliteTimescale) -> FineSums:
    return {
        (str(symbol), datetime.fromisoformat(str(bucket))): (
            _scaled(Decimal(str(notional))),
            _scaled(Decimal(str(volume))),
            int(str(count)),
        )
        for symbol, bucket, notional, volume, count in db.query(_FINE_SQL)
    }


async def _plain_fine(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> FineSums:
    cur = await conn.execute(_FINE_SQL)
    out: FineSums = {}
    for symbol, bucket, notional, volume, count in await cur.fetchall():
        assert isinstance(bucket, datetime)
        assert isinstance(notional, Decimal)
        assert isinstance(volume, Decimal)
        out[(str(symbol), bucket)] = (_scaled(notional), _scaled(volume), count)
    return out


async def _assert_modes_agree(
    timescale: PgliteTimescale,
    plain: psycopg.AsyncConnection[tuple[object, ...]],
    trades: Sequence[Trade],
) -> None:
    for view, width in LEVELS.items():
        expected = _exact(_brute_force(trades, width))
        assert _exact(await _plain_candles(plain, view)) == expected, f"plain {view}"
        assert _exact(_pglite_candles(timescale, view)) == expected, f"timescale {view}"
    fine = _fine_expected(trades)
    assert await _plain_fine(plain) == fine, f"plain {FINE}"
    assert _pglite_fine(timescale) == fine, f"timescale {FINE}"


def _materialised_rows(db: PgliteTimescale, view: str) -> int:
    """Rows physically stored in the continuous aggregate's materialisation hypertable."""
    [(table,)] = db.query(
        "SELECT format('%I.%I', materialization_hypertable_schema, "
        "  materialization_hypertable_name) "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
        [view],
    )
    [(count,)] = db.query(f"SELECT count(*) FROM {table}")
    return int(str(count))


async def test_aggregates_are_identical_in_both_modes_and_exact(
    timescale: PgliteTimescale, plain: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """Same trades give the same 1m/1h/1d rows in both modes, equal to a Decimal brute force."""
    trades = _make_trades(seed=20240308)
    assert _ties_decide_open_or_close(trades) >= 20
    for width in LEVELS.values():
        assert min(c.trade_count for c in _brute_force(trades, width).values()) >= 2
    _pglite_insert(timescale, trades)
    await _plain_insert(plain, trades)
    # Real-time aggregation: exact before anything is materialised ...
    await _assert_modes_agree(timescale, plain, trades)
    _refresh(timescale, (t.ts for t in trades))
    assert _materialised_rows(timescale, "trade_buckets_1m") == len(_brute_force(trades, MINUTE))
    assert _materialised_rows(timescale, FINE) == len(_brute_force(trades, TEN_SECONDS))
    # ... and after the bottom-up refresh, from the materialised rows.
    await _assert_modes_agree(timescale, plain, trades)


@dataclass(frozen=True)
class Corrections:
    updated: list[Trade]
    deleted: list[Trade]
    inserted: list[Trade]

    def apply(self, trades: Sequence[Trade]) -> list[Trade]:
        """The trades after the corrections."""
        replaced = {(t.symbol, t.trade_id): t for t in self.updated}
        gone = {(t.symbol, t.trade_id) for t in self.deleted}
        kept = [replaced.get((t.symbol, t.trade_id), t) for t in trades]
        return [t for t in kept if (t.symbol, t.trade_id) not in gone] + self.inserted

    def times(self) -> list[datetime]:
        return [t.ts for t in (*self.updated, *self.deleted, *self.inserted)]


def _make_corrections(trades: Sequence[Trade], seed: int) -> Corrections:
    """Reprice opens/closes, delete highs and a whole minute, add late trades and a new minute."""
    rng = random.Random(seed)
    by_minute: dict[tuple[str, datetime], list[Trade]] = {}
    for t in sorted(trades, key=lambda t: (t.ts, t.trade_id)):
        by_minute.setdefault((t.symbol, _floor(t.ts, MINUTE)), []).append(t)
    minutes = rng.sample(sorted(by_minute), 16)
    updated: list[Trade] = []
    deleted: list[Trade] = []
    inserted: list[Trade] = []
    for key in minutes[:5]:
        first, last = by_minute[key][0], by_minute[key][-1]
        updated.append(replace(first, price=first.price * 2, quantity=Decimal("0.5")))
        updated.append(replace(last, price=last.price / 2 + Decimal("0.000001")))
    for key in minutes[5:9]:
        deleted.append(max(by_minute[key], key=lambda t: t.price))
    deleted += by_minute[minutes[9]]
    for key in minutes[10:14]:
        first = by_minute[key][0]
        inserted.append(
            replace(first, trade_id=first.trade_id - 1, price=first.price + Decimal("1.23"))
        )
        last = by_minute[key][-1]
        inserted.append(
            replace(last, trade_id=last.trade_id + 1, price=last.price * Decimal("0.999"))
        )
    # A minute with no trades yet, inside the materialised span: its row appears only on refresh.
    earliest, latest = min(t.ts for t in trades), max(t.ts for t in trades)
    symbol, minute = minutes[14]
    hour = _floor(minute, HOUR)
    free = next(
        m
        for m in (hour + k * MINUTE for k in range(60))
        if (symbol, m) not in by_minute and earliest < m < latest - MINUTE
    )
    for ms, trade_id, price in ((7, 20, "10.5"), (7, 10, "11.25"), (900, 5, "9.000")):
        at = free + timedelta(milliseconds=ms)
        inserted.append(Trade(symbol, trade_id, at, Decimal(price), Decimal("3.0")))
    return Corrections(updated, deleted, inserted)


def _pglite_correct(db: PgliteTimescale, corrections: Corrections) -> None:
    for t in corrections.updated:
        db.query(
            "UPDATE trades SET price = $1, quantity = $2 WHERE symbol = $3 AND trade_id = $4",
            [format(t.price, "f"), format(t.quantity, "f"), t.symbol, str(t.trade_id)],
        )
    for t in corrections.deleted:
        db.query(
            "DELETE FROM trades WHERE symbol = $1 AND trade_id = $2", [t.symbol, str(t.trade_id)]
        )
    _pglite_insert(db, corrections.inserted)


async def _plain_correct(
    conn: psycopg.AsyncConnection[tuple[object, ...]], corrections: Corrections
) -> None:
    async with conn.transaction():
        for t in corrections.updated:
            await conn.execute(
                "UPDATE trades SET price = %s, quantity = %s WHERE symbol = %s AND trade_id = %s",
                (t.price, t.quantity, t.symbol, t.trade_id),
            )
        for t in corrections.deleted:
            await conn.execute(
                "DELETE FROM trades WHERE symbol = %s AND trade_id = %s", (t.symbol, t.trade_id)
            )
        await _plain_insert(conn, corrections.inserted)


async def test_corrections_are_stale_until_refreshed_then_identical(
    timescale: PgliteTimescale, plain: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """Corrections in a materialised region show in TimescaleDB only after the bottom-up refresh."""
    trades = _make_trades(seed=7)
    _pglite_insert(timescale, trades)
    await _plain_insert(plain, trades)
    _refresh(timescale, (t.ts for t in trades))
    corrections = _make_corrections(trades, seed=8)
    corrected = corrections.apply(trades)
    assert len(corrected) == len(trades) - len(corrections.deleted) + len(corrections.inserted)

    _pglite_correct(timescale, corrections)
    await _plain_correct(plain, corrections)

    stale = _exact(_pglite_candles(timescale, "trade_buckets_1m"))
    assert stale == _exact(_brute_force(trades, MINUTE))
    assert stale != _exact(await _plain_candles(plain, "trade_buckets_1m"))
    _refresh(timescale, corrections.times())
    await _assert_modes_agree(timescale, plain, corrected)


def _first_versions(tmp_path: Path, mode: StorageMode, upto: int) -> Path:
    """A migrations directory holding ``mode``'s migrations up to version ``upto``."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) <= upto:
            (directory / path.name).write_text(path.read_text())
    assert [m.version for m in migrations_for(mode, directory)] == list(range(1, upto + 1))
    return directory


async def test_upgrade_fills_the_10s_level_from_stored_trades_in_plain_mode(
    database_url: str, tmp_path: Path
) -> None:
    """A plain database holding trades before version 3 gets exact 10-second sums on upgrade,
    and its triggers keep them exact through later inserts, updates and deletes."""
    older = _first_versions(tmp_path, StorageMode.PLAIN, upto=2)
    assert await migrate(database_url, "plain", directory=older) is StorageMode.PLAIN
    trades = _make_trades(seed=11)
    later = trades[len(trades) // 2 :]
    trades = trades[: len(trades) // 2]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SET TimeZone = 'UTC'")
        await _plain_insert(conn, trades)
        assert await migrate(database_url, "plain") is StorageMode.PLAIN
        assert await _plain_fine(conn) == _fine_expected(trades)
        await _plain_insert(conn, later)
        corrections = _make_corrections(trades + later, seed=12)
        await _plain_correct(conn, corrections)
        corrected = corrections.apply(trades + later)
        assert await _plain_fine(conn) == _fine_expected(corrected)


async def test_upgrade_to_the_cheaper_minute_trigger_keeps_candles_exact(
    database_url: str, tmp_path: Path
) -> None:
    """A plain database with candles kept by version 2's minute trigger, upgraded to version 4:
    later inserts (shuffled, same-ms bursts, into minutes already holding trades) extend the
    stored candles exactly as a brute force over every trade gives them."""
    older = _first_versions(tmp_path, StorageMode.PLAIN, upto=3)
    assert await migrate(database_url, "plain", directory=older) is StorageMode.PLAIN
    trades = _make_trades(seed=14)
    before, after = trades[: len(trades) // 2], trades[len(trades) // 2 :]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SET TimeZone = 'UTC'")
        await _plain_insert(conn, before)
        assert await migrate(database_url, "plain") is StorageMode.PLAIN
        await _plain_insert(conn, after)
        for view, width in LEVELS.items():
            expected = _exact(_brute_force(trades, width))
            assert _exact(await _plain_candles(conn, view)) == expected, view


def test_upgrade_keeps_the_10s_level_exact_in_timescale_mode(timescale_v2: PgliteTimescale) -> None:
    """A TimescaleDB database holding materialised trades before version 3: the new continuous
    aggregate answers them exactly at once (real-time aggregation), their range is queued for
    the processor's refresh, and after that refresh they come from materialised rows."""
    db = timescale_v2
    trades = _make_trades(seed=13)
    _pglite_insert(db, trades)
    _refresh(db, (t.ts for t in trades), fine=False)  # 10s does not exist yet
    [version_3] = [m for m in migrations_for(StorageMode.TIMESCALE) if m.version == 3]
    db.execute_script(version_3.sql)
    expected = _fine_expected(trades)
    assert _materialised_rows(db, FINE) == 0
    assert _pglite_fine(db) == expected
    [(start, end)] = db.query("SELECT start_ts, end_ts FROM aggregate_refresh_queue")
    first, last = min(t.ts for t in trades), max(t.ts for t in trades)
    assert (datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end))) == (
        first,
        last + timedelta(milliseconds=1),
    )
    db.query(
        "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)",
        [
            FINE,
            _floor(first, TEN_SECONDS).isoformat(),
            (_floor(last, TEN_SECONDS) + TEN_SECONDS).isoformat(),
        ],
    )
    assert _materialised_rows(db, FINE) == len(expected)
    assert _pglite_fine(db) == expected


async def test_upgrade_starts_each_verified_range_where_its_ledger_run_begins(
    database_url: str, tmp_path: Path
) -> None:
    """Version 5 records where each symbol's verified range begins: the start of the run of
    contiguous verified windows ending at its watermark (not a window before a hole, nor a
    pending one); the watermark itself when no window is recorded."""
    older = _first_versions(tmp_path, StorageMode.PLAIN, upto=4)
    assert await migrate(database_url, "plain", directory=older) is StorageMode.PLAIN
    ledger = [  # BTC: 0-1 verified, hole, 3-4 pending, 4-7 verified, watermark 7
        ("BTC", 0, 1, "verified"),
        ("BTC", 3, 4, "pending"),
        ("BTC", 4, 5, "verified"),
        ("BTC", 5, 7, "verified"),
        ("ETH", 5, 6, "verified"),  # not contiguous with ETH's watermark 9
    ]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for symbol, until in (("BTC", 7), ("ETH", 9), ("SOL", 2)):
            await conn.execute(
                "INSERT INTO symbols (symbol, verified_until) VALUES (%s, %s)",
                (symbol, BASE + until * MINUTE),
            )
        for symbol, start, end, state in ledger:
            await conn.execute(
                "INSERT INTO coverage_windows (symbol, start_ts, end_ts, state)"
                " VALUES (%s, %s, %s, %s)",
                (symbol, BASE + start * MINUTE, BASE + end * MINUTE, state),
            )
        assert await migrate(database_url, "plain") is StorageMode.PLAIN
        cur = await conn.execute("SELECT symbol, verified_from FROM symbols ORDER BY symbol")
        got = dict(await cur.fetchall())
    assert got == {"BTC": BASE + 4 * MINUTE, "ETH": BASE + 9 * MINUTE, "SOL": BASE + 2 * MINUTE}


def _around_dst_changes(seed: int) -> list[Trade]:
    """Trades over three days, plus trades in the last hour of 2024-03-10 (New York moves to
    EDT at 07:00Z: a calendar day there is 23 hours) and around 2024-11-03 (back to EST at
    06:00Z: 25 hours)."""
    extra = [
        Trade("BTC-USD", 1, datetime(2024, 3, 10, 23, 30, tzinfo=UTC), Decimal(200), Decimal(1)),
        Trade("BTC-USD", 2, datetime(2024, 11, 3, 10, tzinfo=UTC), Decimal(100), Decimal(1)),
        Trade("BTC-USD", 3, datetime(2024, 11, 4, 0, 30, tzinfo=UTC), Decimal(300), Decimal(1)),
    ]
    return _make_trades(seed) + extra


async def test_day_buckets_do_not_depend_on_the_session_time_zone(database_url: str) -> None:
    """Written by sessions in a zone with daylight saving time (the server's default TimeZone
    comes from the OS, or PGTZ), every level of the plain mode equals the UTC brute force,
    through inserts and corrections: a day is 24 hours. Version 2 summed a calendar day of the
    session's zone, leaving out the last hour of 2024-03-10 and counting the first of
    2024-11-04 twice."""
    assert await migrate(database_url, "plain") is StorageMode.PLAIN
    trades = _around_dst_changes(seed=15)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SET TimeZone = 'America/New_York'")
        await _plain_insert(conn, trades)
        for view, width in LEVELS.items():
            assert _exact(await _plain_candles(conn, view)) == _exact(_brute_force(trades, width))
        corrections = _make_corrections(trades, seed=16)
        await _plain_correct(conn, corrections)
        corrected = corrections.apply(trades)
        for view, width in LEVELS.items():
            expected = _exact(_brute_force(corrected, width))
            assert _exact(await _plain_candles(conn, view)) == expected, view


async def test_upgrade_repairs_day_buckets_summed_over_a_calendar_day(
    database_url: str, tmp_path: Path
) -> None:
    """A plain database whose day buckets version 2's function summed in a DST zone's calendar
    days is repaired by version 7: every day equals the UTC brute force again."""
    older = _first_versions(tmp_path, StorageMode.PLAIN, upto=6)
    assert await migrate(database_url, "plain", directory=older) is StorageMode.PLAIN
    trades = _around_dst_changes(seed=17)
    expected = _exact(_brute_force(trades, DAY))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SET TimeZone = 'America/New_York'")
        await _plain_insert(conn, trades)
        assert _exact(await _plain_candles(conn, "trade_buckets_1d")) != expected
        assert await migrate(database_url, "plain") is StorageMode.PLAIN
        assert _exact(await _plain_candles(conn, "trade_buckets_1d")) == expected
