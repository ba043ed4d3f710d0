"""TimescaleDB 2.23 (Timescale License) inside PGlite/WASM, driven through devstack.pglite.

Proves, against the real engine, what the processor's schema relies on: hypertables with
NUMERIC columns, a real-time 1-minute continuous aggregate, hierarchical 1-hour / 1-day
aggregates, refresh policies, explicit ``refresh_continuous_aggregate`` calls, and exact
NUMERIC sums (checked against a Python ``Decimal`` brute force), plus the exact staleness
semantics after UPDATE / DELETE / late INSERT in an already-materialised region.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from devstack.pglite import (
    PgliteBridgeError,
    PgliteError,
    PgliteTimescale,
    PgliteUnavailable,
    ensure_installed,
    node_executable,
    unavailable_reason,
)

pytestmark = pytest.mark.skipif(
    node_executable() is None,
    reason="Node.js ('node' on PATH, >= 18) is required for the PGlite/TimescaleDB bridge",
)

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC-USD", "ETH-USD")


@dataclass(frozen=True)
class Trade:
    time: datetime
    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True)
class Candle:
    notional: Decimal
    volume: Decimal
    n: int
    open: Decimal
    close: Decimal
    high: Decimal
    low: Decimal


Candles = dict[tuple[str, str], Candle]


def _pg_ts(value: datetime) -> str:
    """PostgreSQL's text output for a UTC timestamptz (TimeZone=UTC, DateStyle=ISO)."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00"


def _make_trades(seed: int, count: int = 600) -> list[Trade]:
    """Deterministic trades over ~2.5 hours, 8-decimal prices and quantities."""
    rng = random.Random(seed)
    out: list[Trade] = []
    t = BASE
    for i in range(count):
        t += timedelta(seconds=rng.randint(1, 30), microseconds=rng.randint(0, 999_999))
        price = Decimal(rng.randint(4_000_000_000_000, 4_300_000_000_000)) / 10**8
        quantity = Decimal(rng.randint(1, 250_000_000)) / 10**8
        out.append(Trade(t, SYMBOLS[i % 2], i, price, quantity))
    return out


def _bucket(value: datetime, width: timedelta) -> datetime:
    return BASE + ((value - BASE) // width) * width


def _brute_force(trades: list[Trade], width: timedelta) -> Candles:
    """Exact candles with Python Decimal (high precision context, no floats)."""
    groups: dict[tuple[str, str], list[Trade]] = {}
    for tr in sorted(trades, key=lambda x: x.time):
        groups.setdefault((_pg_ts(_bucket(tr.time, width)), tr.symbol), []).append(tr)
    out: Candles = {}
    with localcontext() as ctx:
        ctx.prec = 100
        for key, grp in groups.items():
            out[key] = Candle(
                notional=sum((t.price * t.quantity for t in grp), Decimal(0)),
                volume=sum((t.quantity for t in grp), Decimal(0)),
                n=len(grp),
                open=grp[0].price,
                close=grp[-1].price,
                high=max(t.price for t in grp),
                low=min(t.price for t in grp),
            )
    return out


def _candles(db: PgliteTimescale, view: str, where: str = "TRUE") -> Candles:
    rows = db.query(
        f"SELECT bucket, symbol, notional, volume, n, open, close, high, low "
        f"FROM {view} WHERE {where} ORDER BY bucket, symbol"
    )
    out: Candles = {}
    for bucket, symbol, *vals in rows:
        assert bucket is not None
        assert symbol is not None
        assert all(v is not None for v in vals)
        notional, volume, n, open_, close, high, low = (str(v) for v in vals)
        out[(bucket, symbol)] = Candle(
            Decimal(notional),
            Decimal(volume),
            int(n),
            Decimal(open_),
            Decimal(close),
            Decimal(high),
            Decimal(low),
        )
    return out


def _create_schema(db: PgliteTimescale, p: str, trades: list[Trade]) -> None:
    """Hypertable ``{p}_trades`` + caggs ``{p}_1m`` -> ``{p}_1h`` -> ``{p}_1d`` (no data)."""
    db.execute_script(
        f"""
        CREATE TABLE {p}_trades (
            time timestamptz NOT NULL,
            symbol text NOT NULL,
            trade_id bigint NOT NULL,
            price numeric NOT NULL,
            quantity numeric NOT NULL,
            PRIMARY KEY (symbol, trade_id, time)
        );
        SELECT create_hypertable('{p}_trades', by_range('time', INTERVAL '1 day'));
        """
    )
    csv = "".join(
        f"{_pg_ts(t.time)},{t.symbol},{t.trade_id},{t.price},{t.quantity}\n" for t in trades
    )
    copied = db.copy_from(f"COPY {p}_trades FROM '/dev/blob' WITH (FORMAT csv)", csv)
    assert copied == len(trades)
    db.execute_script(
        f"""
        CREATE MATERIALIZED VIEW {p}_1m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket('1 minute', time) AS bucket, symbol,
               sum(price * quantity) AS notional, sum(quantity) AS volume, count(*) AS n,
               first(price, time) AS open, last(price, time) AS close,
               max(price) AS high, min(price) AS low
        FROM {p}_trades GROUP BY 1, 2 WITH NO DATA;

        CREATE MATERIALIZED VIEW {p}_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket('1 hour', bucket) AS bucket, symbol,
               sum(notional) AS notional, sum(volume) AS volume, sum(n)::bigint AS n,
               first(open, bucket) AS open, last(close, bucket) AS close,
               max(high) AS high, min(low) AS low
        FROM {p}_1m GROUP BY 1, 2 WITH NO DATA;

        CREATE MATERIALIZED VIEW {p}_1d
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket('1 day', bucket) AS bucket, symbol,
               sum(notional) AS notional, sum(volume) AS volume, sum(n)::bigint AS n,
               first(open, bucket) AS open, last(close, bucket) AS close,
               max(high) AS high, min(low) AS low
        FROM {p}_1h GROUP BY 1, 2 WITH NO DATA;
        """
    )


def _refresh(db: PgliteTimescale, view: str, start: str | None, end: str | None) -> None:
    db.query(
        "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)",
        [view, start, end],
    )


def _refresh_all(db: PgliteTimescale, p: str) -> None:
    for view in (f"{p}_1m", f"{p}_1h", f"{p}_1d"):
        _refresh(db, view, "2024-01-01", "2024-01-03")


def _watermark(db: PgliteTimescale, view: str) -> str | None:
    rows = db.query(
        "SELECT _timescaledb_functions.to_timestamp("
        "  _timescaledb_functions.cagg_watermark(mat_hypertable_id)) "
        "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = $1",
        [view],
    )
    assert len(rows) == 1
    return rows[0][0]


def _materialised_rows(db: PgliteTimescale, view: str) -> int:
    """Rows physically stored in the cagg's materialisation hypertable."""
    [(table,)] = db.query(
        "SELECT format('%I.%I', h.schema_name, h.table_name) "
        "FROM _timescaledb_catalog.continuous_agg ca "
        "JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id "
        "WHERE ca.user_view_name = $1",
        [view],
    )
    [(count,)] = db.query(f"SELECT count(*) FROM {table}")
    assert count is not None
    return int(count)


MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def db() -> Iterator[PgliteTimescale]:
    """One PGlite + TimescaleDB engine for the whole module (tests use their own tables)."""
    reason = unavailable_reason(need_installed=False)
    if reason is not None:
        pytest.skip(reason)
    try:
        ensure_installed()
    except PgliteUnavailable as exc:
        pytest.skip(str(exc))
    bridge = PgliteTimescale()
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.close()


# --- engine & bridge ------------------------------------------------------------------------


def test_timescaledb_2_23_with_timescale_license(db: PgliteTimescale) -> None:
    """CREATE EXTENSION timescaledb gives 2.23.x under the Timescale (not Apache) license."""
    [(extversion,)] = db.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    [(license_,)] = db.query("SHOW timescaledb.license")
    assert extversion is not None
    assert extversion.startswith("2.23.")
    assert license_ == "timescale"
    assert db.timescaledb_version == extversion
    assert db.license == "timescale"
    assert db.postgres_version is not None
    assert db.postgres_version.startswith("17.")
    assert db.startup_ms is not None
    assert db.startup_ms > 0


def test_values_come_back_as_exact_postgres_text(db: PgliteTimescale) -> None:
    """int8 beyond 2^53, long NUMERICs, timestamptz, bool, arrays and NULL are exact text."""
    rows = db.query(
        "SELECT 9007199254740993::int8, $1::numeric * 3, "
        "'2024-01-01 00:00:07.5+00'::timestamptz, true, '{1.10,2.20}'::numeric[], "
        "$2::text, 0.1::float8 + 0.2::float8, '1 day 02:03:04'::interval",
        ["123456789012345678901234567890.000000000000000000000000000001", None],
    )
    assert rows == [
        (
            "9007199254740993",
            "370370367037037036703703703670.000000000000000000000000000003",
            "2024-01-01 00:00:07.5+00",
            "t",
            "{1.10,2.20}",
            None,
            "0.30000000000000004",
            "1 day 02:03:04",
        )
    ]


def test_params_must_be_text(db: PgliteTimescale) -> None:
    """Non-text parameters are rejected in Python before reaching the engine."""
    with pytest.raises(TypeError):
        db.query("SELECT $1::numeric", [Decimal("1.5")])  # type: ignore[list-item]
    assert db.query("SELECT $1::numeric + 1", ["1.5"]) == [("2.5",)]


def test_sql_error_raises_pglite_error_and_session_survives(db: PgliteTimescale) -> None:
    """An SQL error surfaces as PgliteError with SQLSTATE; the engine keeps working."""
    with pytest.raises(PgliteError, match="does not exist") as info:
        db.query("SELECT * FROM no_such_table")
    assert info.value.code == "42P01"
    assert info.value.sql == "SELECT * FROM no_such_table"
    assert db.query("SELECT 1") == [("1",)]


def test_query_accepts_one_statement_script_accepts_many(db: PgliteTimescale) -> None:
    """query() is single-statement (extended protocol); execute_script() runs many."""
    with pytest.raises(PgliteError, match="multiple commands") as info:
        db.query("SELECT 1; SELECT 2")
    assert info.value.code == "42601"
    result = db.run_script("CREATE TABLE ms_t (a int); INSERT INTO ms_t VALUES (1), (2);")
    assert result.affected == 2
    assert db.run_script("SELECT 1; SELECT count(*) FROM ms_t").rows == [("2",)]


def test_multi_statement_script_is_one_implicit_transaction(db: PgliteTimescale) -> None:
    """A failing statement in a script rolls back the script's earlier statements."""
    db.execute_script("CREATE TABLE atomic_t (a numeric)")
    with pytest.raises(PgliteError) as info:
        db.execute_script("INSERT INTO atomic_t VALUES (1); SELECT 1/0;")
    assert info.value.code == "22012"
    assert db.query("SELECT count(*) FROM atomic_t") == [("0",)]


def test_explicit_transaction_spans_requests(db: PgliteTimescale) -> None:
    """BEGIN/ROLLBACK sent as separate requests act on the single PGlite session."""
    db.execute_script("CREATE TABLE tx_t (a numeric)")
    db.query("BEGIN")
    db.query("INSERT INTO tx_t VALUES ($1)", ["1.5"])
    assert db.query("SELECT sum(a) FROM tx_t") == [("1.5",)]
    db.query("ROLLBACK")
    assert db.query("SELECT count(*) FROM tx_t") == [("0",)]


def test_copy_through_dev_blob_roundtrips_exactly(db: PgliteTimescale) -> None:
    """COPY FROM/TO '/dev/blob' (PGlite's COPY path) round-trips CSV byte for byte."""
    db.execute_script("CREATE TABLE copy_t (a numeric, b text)")
    data = '0.10000000000000000001,x\n2.25,"y,z"\n'
    assert db.copy_from("COPY copy_t FROM '/dev/blob' WITH (FORMAT csv)", data) == 2
    assert db.copy_to("COPY copy_t TO '/dev/blob' WITH (FORMAT csv)") == data


# --- hypertable & continuous aggregates ------------------------------------------------------


def test_create_hypertable_with_numeric_columns(db: PgliteTimescale) -> None:
    """create_hypertable works on (time timestamptz, price/quantity NUMERIC)."""
    trades = _make_trades(seed=1, count=50)
    _create_schema(db, "ht", trades)
    assert db.query(
        "SELECT hypertable_name, num_dimensions FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'ht_trades'"
    ) == [("ht_trades", "1")]
    assert db.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'ht_trades' AND column_name IN ('time', 'price', 'quantity') "
        "ORDER BY column_name"
    ) == [
        ("price", "numeric"),
        ("quantity", "numeric"),
        ("time", "timestamp with time zone"),
    ]
    with localcontext() as ctx:
        ctx.prec = 100
        expected = sum((t.price * t.quantity for t in trades), Decimal(0))
    [(total,)] = db.query("SELECT sum(price * quantity) FROM ht_trades")
    assert total is not None
    assert Decimal(total) == expected


def test_caggs_are_real_time_and_hierarchical(db: PgliteTimescale) -> None:
    """1m/1h/1d caggs are registered as continuous, real-time, with 1h on 1m and 1d on 1h."""
    _create_schema(db, "meta", _make_trades(seed=2, count=20))
    rows = db.query(
        "SELECT view_name, materialized_only, finalized "
        "FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name LIKE 'meta\\_%' ORDER BY view_name"
    )
    assert rows == [("meta_1d", "f", "t"), ("meta_1h", "f", "t"), ("meta_1m", "f", "t")]
    parents = db.query(
        "SELECT ca.user_view_name, parent.user_view_name "
        "FROM _timescaledb_catalog.continuous_agg ca "
        "JOIN _timescaledb_catalog.continuous_agg parent "
        "  ON parent.mat_hypertable_id = ca.parent_mat_hypertable_id "
        "WHERE ca.user_view_name LIKE 'meta\\_%' ORDER BY 1"
    )
    assert parents == [("meta_1d", "meta_1h"), ("meta_1h", "meta_1m")]


def test_realtime_aggregation_before_any_refresh_is_exact(db: PgliteTimescale) -> None:
    """With nothing materialised, all three caggs compute from raw rows, exactly."""
    trades = _make_trades(seed=3)
    _create_schema(db, "rt", trades)
    assert _materialised_rows(db, "rt_1m") == 0
    assert _candles(db, "rt_1m") == _brute_force(trades, MIN)
    assert _candles(db, "rt_1h") == _brute_force(trades, HOUR)
    assert _candles(db, "rt_1d") == _brute_force(trades, DAY)


def test_refresh_materialises_exact_numeric_candles(db: PgliteTimescale) -> None:
    """CALL refresh_continuous_aggregate materialises 1m, then 1h and 1d on top, exactly."""
    trades = _make_trades(seed=4)
    _create_schema(db, "rf", trades)
    _refresh_all(db, "rf")
    last_minute = _bucket(max(t.time for t in trades), MIN) + MIN
    assert _watermark(db, "rf_1m") == _pg_ts(last_minute)
    assert _watermark(db, "rf_1h") == _pg_ts(_bucket(last_minute, HOUR) + HOUR)
    minute = _brute_force(trades, MIN)
    assert len(minute) > 100
    assert _candles(db, "rf_1m") == minute
    assert _candles(db, "rf_1h") == _brute_force(trades, HOUR)
    assert _candles(db, "rf_1d") == _brute_force(trades, DAY)
    # The materialised rows themselves (not the real-time union) hold the exact sums.
    db.query("ALTER MATERIALIZED VIEW rf_1h SET (timescaledb.materialized_only = true)")
    assert _candles(db, "rf_1h") == _brute_force(trades, HOUR)


def test_call_refresh_transaction_block_rules(db: PgliteTimescale) -> None:
    """CALL refresh works as a lone statement, never in a multi-statement script or BEGIN."""
    _create_schema(db, "cr", _make_trades(seed=5, count=30))
    db.query("CALL refresh_continuous_aggregate('cr_1m', '2024-01-01', '2024-01-02')")
    db.execute_script("CALL refresh_continuous_aggregate('cr_1h', NULL, NULL)")
    with pytest.raises(PgliteError, match="cannot run inside a transaction block") as info:
        db.execute_script("SELECT 1; CALL refresh_continuous_aggregate('cr_1d', NULL, NULL)")
    assert info.value.code == "25001"
    db.query("BEGIN")
    try:
        with pytest.raises(PgliteError, match="cannot run inside a transaction block"):
            db.query("CALL refresh_continuous_aggregate('cr_1d', NULL, NULL)")
    finally:
        db.query("ROLLBACK")
    result = db.run("CALL refresh_continuous_aggregate('cr_1m', '2024-01-01', '2024-01-02')")
    assert any("already up-to-date" in n for n in result.notices)


def test_refresh_window_smaller_than_a_bucket_is_rejected(db: PgliteTimescale) -> None:
    """A refresh window not covering one whole bucket raises 'refresh window too small'."""
    _create_schema(db, "rw", _make_trades(seed=6, count=10))
    with pytest.raises(PgliteError, match="refresh window too small") as info:
        _refresh(db, "rw_1m", "2024-01-01 00:00:10+00", "2024-01-01 00:00:50+00")
    assert info.value.code == "22023"


def test_refresh_policies_can_be_added_and_run_by_hand(db: PgliteTimescale) -> None:
    """add_continuous_aggregate_policy creates jobs; no scheduler runs them, run_job does."""
    trades = _make_trades(seed=7)
    _create_schema(db, "po", trades)
    job_ids: list[str] = []
    for view in ("po_1m", "po_1h"):
        # buckets_per_batch => 0: the 2.23 default batches the refresh one bucket at a time,
        # which over 2024..now() in 1-minute buckets takes ~5 s per run in WASM.
        [(job_id,)] = db.query(
            "SELECT add_continuous_aggregate_policy($1::regclass, start_offset => NULL, "
            "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', "
            "buckets_per_batch => 0)",
            [view],
        )
        assert job_id is not None
        job_ids.append(job_id)
    [(day_job,)] = db.query(
        "SELECT add_continuous_aggregate_policy('po_1d', INTERVAL '30 days', INTERVAL '1 day', "
        "INTERVAL '1 hour')"
    )
    assert day_job is not None
    jobs = db.query(
        "SELECT job_id::text, proc_name FROM timescaledb_information.jobs "
        "WHERE job_id = ANY($1::int[]) ORDER BY job_id",
        ["{" + ",".join([*job_ids, day_job]) + "}"],
    )
    assert jobs == [(j, "policy_refresh_continuous_aggregate") for j in [*job_ids, day_job]]
    assert _materialised_rows(db, "po_1m") == 0  # no background scheduler in PGlite
    for job_id in job_ids:
        db.query("CALL run_job($1::int)", [job_id])
    assert _materialised_rows(db, "po_1m") == len(_brute_force(trades, MIN))
    db.query("ALTER MATERIALIZED VIEW po_1h SET (timescaledb.materialized_only = true)")
    assert _candles(db, "po_1h") == _brute_force(trades, HOUR)


# --- invalidation semantics ------------------------------------------------------------------


def test_update_in_materialised_region_is_stale_until_refresh(db: PgliteTimescale) -> None:
    """After UPDATE of an old row, 1m stays stale until its refresh; 1h until its own refresh."""
    trades = _make_trades(seed=8)
    _create_schema(db, "up", trades)
    _refresh_all(db, "up")
    victim = trades[10]
    key_m = (_pg_ts(_bucket(victim.time, MIN)), victim.symbol)
    key_h = (_pg_ts(_bucket(victim.time, HOUR)), victim.symbol)
    before_m, before_h = _brute_force(trades, MIN), _brute_force(trades, HOUR)

    db.query(
        "UPDATE up_trades SET price = $1, quantity = $2 WHERE trade_id = $3",
        ["12345.00000001", "0.00000007", str(victim.trade_id)],
    )
    updated = [
        replace(t, price=Decimal("12345.00000001"), quantity=Decimal("0.00000007"))
        if t.trade_id == victim.trade_id
        else t
        for t in trades
    ]
    after_m, after_h = _brute_force(updated, MIN), _brute_force(updated, HOUR)
    assert after_m[key_m] != before_m[key_m]

    # Real-time aggregation only covers buckets above the watermark: the old bucket is stale.
    assert _candles(db, "up_1m")[key_m] == before_m[key_m]
    assert _candles(db, "up_1h")[key_h] == before_h[key_h]
    logged = db.query(
        "SELECT _timescaledb_functions.to_timestamp(lowest_modified_value), "
        "       _timescaledb_functions.to_timestamp(greatest_modified_value) "
        "FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l "
        "JOIN _timescaledb_catalog.hypertable h ON h.id = l.hypertable_id "
        "WHERE h.table_name = 'up_trades'"
    )
    assert logged == [(_pg_ts(victim.time), _pg_ts(victim.time))]

    # Refreshing the 1m bucket fixes 1m only; the 1h cagg keeps its materialised value.
    _refresh(db, "up_1m", key_m[0], _pg_ts(_bucket(victim.time, MIN) + MIN))
    assert _candles(db, "up_1m") == after_m
    assert _candles(db, "up_1h")[key_h] == before_h[key_h]

    _refresh(db, "up_1h", key_h[0], _pg_ts(_bucket(victim.time, HOUR) + HOUR))
    assert _candles(db, "up_1h") == after_h
    _refresh(db, "up_1d", "2024-01-01", "2024-01-02")
    assert _candles(db, "up_1d") == _brute_force(updated, DAY)


def test_delete_and_late_insert_are_stale_until_refresh(db: PgliteTimescale) -> None:
    """DELETE and a late INSERT below the watermark are invisible until refreshed, then exact."""
    trades = _make_trades(seed=9)
    _create_schema(db, "dl", trades)
    _refresh_all(db, "dl")
    gone = trades[20]
    late = Trade(
        gone.time + timedelta(microseconds=1),
        gone.symbol,
        10_000,
        Decimal("41000.12345678"),
        Decimal("0.5"),
    )
    db.query("DELETE FROM dl_trades WHERE trade_id = $1", [str(gone.trade_id)])
    db.query(
        "INSERT INTO dl_trades VALUES ($1, $2, $3, $4, $5)",
        [_pg_ts(late.time), late.symbol, str(late.trade_id), str(late.price), str(late.quantity)],
    )
    changed = [t for t in trades if t.trade_id != gone.trade_id]
    changed.append(late)
    key = (_pg_ts(_bucket(gone.time, MIN)), gone.symbol)
    assert _candles(db, "dl_1m") == _brute_force(trades, MIN)  # stale: old numbers
    assert _brute_force(changed, MIN)[key] != _brute_force(trades, MIN)[key]

    _refresh_all(db, "dl")
    assert _candles(db, "dl_1m") == _brute_force(changed, MIN)
    assert _candles(db, "dl_1h") == _brute_force(changed, HOUR)
    assert _candles(db, "dl_1d") == _brute_force(changed, DAY)


def test_insert_above_watermark_is_visible_without_refresh(db: PgliteTimescale) -> None:
    """New rows after the watermark show at once in 1m/1h; 1d needs a bottom-up refresh."""
    trades = _make_trades(seed=10)
    _create_schema(db, "nw", trades)
    _refresh_all(db, "nw")
    fresh = Trade(
        max(t.time for t in trades) + timedelta(hours=2),
        "BTC-USD",
        20_000,
        Decimal("43000.00000001"),
        Decimal("1.23456789"),
    )
    db.query(
        "INSERT INTO nw_trades VALUES ($1, $2, $3, $4, $5)",
        [
            _pg_ts(fresh.time),
            fresh.symbol,
            str(fresh.trade_id),
            str(fresh.price),
            str(fresh.quantity),
        ],
    )
    everything = [*trades, fresh]
    assert _candles(db, "nw_1m") == _brute_force(everything, MIN)
    assert _candles(db, "nw_1h") == _brute_force(everything, HOUR)
    # ...but the day bucket was already materialised, so 1d is stale,
    assert _candles(db, "nw_1d") == _brute_force(trades, DAY)
    # and refreshing 1d alone does not help: a hierarchical refresh reads only what its
    # parent has MATERIALISED (1h, which in turn needs 1m), so refresh bottom-up.
    _refresh(db, "nw_1d", "2024-01-01", "2024-01-03")
    assert _candles(db, "nw_1d") == _brute_force(trades, DAY)
    _refresh_all(db, "nw")
    assert _candles(db, "nw_1d") == _brute_force(everything, DAY)


# --- other SQL features the processor may use ------------------------------------------------


def test_on_conflict_upsert_on_hypertable(db: PgliteTimescale) -> None:
    """INSERT ... ON CONFLICT DO UPDATE / DO NOTHING work on a hypertable's unique key."""
    _create_schema(db, "oc", _make_trades(seed=11, count=5))
    [(ts, sym, tid)] = db.query(
        "SELECT time, symbol, trade_id FROM oc_trades ORDER BY time LIMIT 1"
    )
    params: list[str | None] = [ts, sym, tid, "1.00000001", "2"]
    rows = db.query(
        "INSERT INTO oc_trades VALUES ($1, $2, $3, $4, $5) ON CONFLICT (symbol, trade_id, time) "
        "DO UPDATE SET price = excluded.price RETURNING price",
        params,
    )
    assert rows == [("1.00000001",)]
    result = db.run(
        "INSERT INTO oc_trades VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", params
    )
    assert result.affected == 0
    assert db.query("SELECT count(*) FROM oc_trades") == [("5",)]


def test_statement_trigger_with_transition_table_on_hypertable(db: PgliteTimescale) -> None:
    """AFTER ... FOR EACH STATEMENT triggers with REFERENCING NEW TABLE fire on hypertables."""
    _create_schema(db, "tg", [])
    db.execute_script(
        """
        CREATE TABLE tg_audit (rows_seen bigint, notional numeric);
        CREATE FUNCTION tg_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO tg_audit SELECT count(*), sum(price * quantity) FROM new_rows;
            RETURN NULL;
        END $$;
        CREATE TRIGGER tg_stmt AFTER INSERT ON tg_trades REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tg_audit_fn();
        """
    )
    db.query(
        "INSERT INTO tg_trades VALUES "
        "('2024-01-01 00:00:01+00', 'BTC-USD', 1, 0.1, 3), "
        "('2024-01-02 00:00:01+00', 'BTC-USD', 2, 0.2, 3)"  # two different chunks
    )
    assert db.query("SELECT rows_seen, notional FROM tg_audit") == [("2", "0.9")]


def test_copy_from_stdin_crashes_the_engine_and_bridge_recovers() -> None:
    """COPY FROM STDIN traps the WASM engine: PgliteBridgeError, then start() works again."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with PgliteTimescale() as own:
        own.execute_script("CREATE TABLE stdin_t (a int)")
        with pytest.raises(PgliteBridgeError, match="crashed"):
            own.query("COPY stdin_t FROM STDIN")
        assert not own.running
        own.start()
        assert own.query("SELECT count(*) FROM pg_class WHERE relname = 'stdin_t'") == [("0",)]


def test_data_dir_persists_across_restarts(tmp_path: Path) -> None:
    """With a data directory, tables and cagg contents survive close() and a new start()."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    trades = _make_trades(seed=12, count=40)
    with PgliteTimescale(tmp_path / "pgdata") as first:
        _create_schema(first, "pd", trades)
        _refresh(first, "pd_1m", None, None)
    with PgliteTimescale(tmp_path / "pgdata") as second:
        assert second.timescaledb_version is not None
        assert second.timescaledb_version.startswith("2.23.")
        assert _materialised_rows(second, "pd_1m") == len(_brute_force(trades, MIN))
        assert _candles(second, "pd_1m") == _brute_force(trades, MIN)
        # The runner LOADs timescaledb on start: without that, a reopened cluster rejects
        # inserts with 'invalid INSERT on the root table of hypertable'.
        extra = Trade(trades[-1].time + HOUR, "ETH-USD", 999, Decimal("1.5"), Decimal("2"))
        second.query(
            "INSERT INTO pd_trades VALUES ($1, $2, $3, $4, $5)",
            [_pg_ts(extra.time), extra.symbol, "999", "1.5", "2"],
        )
        assert _candles(second, "pd_1m") == _brute_force([*trades, extra], MIN)
