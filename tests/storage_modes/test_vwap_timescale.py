"""GetVwap's window SQL against real TimescaleDB 2.23 (PGlite), checked against a brute force.

The VWAP service's own statements in this mode (``vwap.storage.TIMESCALE``: the window
statement fed by ``plan_pieces`` and ``_piece_params``, and the batched one answering every
window in one statement)
run over the project's TimescaleDB migrations, whose ``trade_buckets_10s/1m/1h/1d``
are hierarchical continuous aggregates with real-time aggregation. For seeded random trades and
windows (edges at any millisecond, empty windows, one trade, same-millisecond bursts, spans of
hours and days) notional, volume and trade count must equal a Python ``Decimal`` brute force
exactly (value and scale): before any refresh, after a bottom-up refresh, and after corrections
in the materialised region followed by a bottom-up refresh of the affected range.
"""

from __future__ import annotations

import decimal
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from devstack.pglite import PgliteTimescale, unavailable_reason
from processor.reconcile.scheduler import refresh_calls
from tests.storage_modes.pglite_params import to_dollar_params
from tradekit.domain import Trade
from tradekit.money import VWAP_PRECISION, vwap_quotient
from vwap.ranges import DAY_MS, HOUR_MS, MINUTE_MS, TEN_SECONDS_MS, Level, plan_pieces
from vwap.storage import TIMESCALE, _piece_params, _windows_params, dt_from_ms

# Only Node itself is required here: PgliteTimescale installs the pinned npm package on first
# start (a fresh clone has no node_modules yet when this module is collected).
pytestmark = pytest.mark.skipif(
    unavailable_reason(need_installed=False) is not None,
    reason=f"PGlite/TimescaleDB bridge unavailable: {unavailable_reason(need_installed=False)}",
)

BASE_MS = 1_709_856_000_000  # 2024-03-08T00:00:00Z
DAYS = 3
SYMBOLS = {"BTC-USD": Decimal(64000), "ETH-USD": Decimal(3100), "DOGE-USD": Decimal("0.16")}
LEVELS = {
    "trade_buckets_10s": TEN_SECONDS_MS,
    "trade_buckets_1m": MINUTE_MS,
    "trade_buckets_1h": HOUR_MS,
    "trade_buckets_1d": DAY_MS,
}
WINDOWS_PER_SYMBOL = 30
COLUMNS = "symbol, trade_id, ts, price, quantity, source"


@dataclass(frozen=True, slots=True)
class Sums:
    """Notional, volume (paired with their scales, so 1.5 and 1.50 differ) and trade count."""

    notional: tuple[Decimal, int | str]
    volume: tuple[Decimal, int | str]
    count: int


def _scaled(value: Decimal) -> tuple[Decimal, int | str]:
    return value, value.as_tuple().exponent


def _exact() -> decimal.Context:
    """A context in which any rounding raises, so the brute force is exact or fails."""
    return decimal.Context(prec=1000, traps=[decimal.Inexact, decimal.Rounded])


def _decimal(rng: random.Random, around: Decimal) -> Decimal:
    """A positive decimal near ``around`` with a random scale (0..10, trailing zeros kept)."""
    scale = rng.randint(0, 10)
    units = int(around * rng.randint(900, 1100) * 10**scale / 1000)
    return Decimal(max(units, 1)).scaleb(-scale)


def _make_trades(seed: int) -> list[Trade]:
    """Per symbol: scattered trades over three days, dense minutes, same-ms bursts, and trades
    on the first and last millisecond of minute, hour and day buckets."""
    rng = random.Random(seed)
    trades: list[Trade] = []
    span = DAYS * DAY_MS
    for symbol, price in SYMBOLS.items():
        times = [BASE_MS + rng.randrange(span) for _ in range(120)]
        for _ in range(12):  # dense minutes with bursts
            minute = BASE_MS + rng.randrange(span // MINUTE_MS) * MINUTE_MS
            for _ in range(rng.randint(3, 8)):
                at = minute + rng.randrange(MINUTE_MS)
                times += [at] * rng.choice((1, 1, 2, 3, 5))
        for width in (TEN_SECONDS_MS, MINUTE_MS, HOUR_MS, DAY_MS):  # bucket edges
            for _ in range(4):
                edge = BASE_MS + rng.randrange(1, span // width) * width
                times += [edge - 1, edge, edge]
        ids = rng.sample(range(1, 10**12), len(times))
        trades += [
            Trade(symbol, trade_id, ts, _decimal(rng, price), _decimal(rng, Decimal(2)))
            for trade_id, ts in zip(ids, times, strict=True)
        ]
    rng.shuffle(trades)
    return trades


def _brute_force(trades: Iterable[Trade], symbol: str, start: int, end: int) -> Sums:
    """Exact sums over the symbol's trades in ``[start, end)``."""
    inside = [t for t in trades if t.symbol == symbol and start <= t.ts_ms < end]
    with decimal.localcontext(_exact()):
        notional = sum((t.price * t.quantity for t in inside), Decimal(0))
        volume = sum((t.quantity for t in inside), Decimal(0))
    return Sums(_scaled(notional), _scaled(volume), len(inside))


def _make_windows(trades: Sequence[Trade], seed: int) -> list[tuple[str, int, int]]:
    """Windows per symbol: random edges and lengths (1 ms to the whole span), a burst's
    millisecond, one trade alone, gaps with no trades, and bucket-aligned days/hours."""
    rng = random.Random(seed)
    first, last = BASE_MS - DAY_MS, BASE_MS + (DAYS + 1) * DAY_MS
    windows: list[tuple[str, int, int]] = []
    for symbol in SYMBOLS:
        stamps = sorted(t.ts_ms for t in trades if t.symbol == symbol)
        counts: dict[int, int] = {}
        for ts in stamps:
            counts[ts] = counts.get(ts, 0) + 1
        distinct = sorted(counts)
        for _ in range(WINDOWS_PER_SYMBOL // 2):
            length = rng.choice((1, 999, MINUTE_MS, HOUR_MS, DAY_MS, DAYS * DAY_MS))
            length = rng.randint(1, length + 1)
            start = rng.randrange(first, last)
            windows.append((symbol, start, start + length))
        burst = rng.choice([ts for ts, n in counts.items() if n > 1])
        windows.append((symbol, burst, burst + 1))
        windows.append((symbol, burst - rng.randrange(HOUR_MS), burst + 1 + rng.randrange(DAY_MS)))
        for _ in range(3):  # exactly one trade
            i = rng.choice([i for i, ts in enumerate(distinct) if counts[ts] == 1][1:-1])
            low, ts, high = distinct[i - 1], distinct[i], distinct[i + 1]
            windows.append((symbol, rng.randint(low + 1, ts), rng.randint(ts + 1, high)))
        gaps = sorted(itertools.pairwise(distinct), key=lambda g: g[0] - g[1])[:3]
        for low, high in gaps:  # no trade: the widest gaps, which span whole buckets
            start = rng.randint(low + 1, (low + high) // 2)
            windows.append((symbol, start, rng.randint(start + 1, high)))
        windows.append((symbol, first, BASE_MS))  # before any trade
        windows.append((symbol, BASE_MS, BASE_MS + DAYS * DAY_MS))  # whole days only
        windows.append((symbol, first, last))  # everything
        hour = BASE_MS + rng.randrange(DAYS * 24) * HOUR_MS
        windows.append((symbol, hour, hour + rng.randint(1, 30) * HOUR_MS))  # whole hours
    return windows


def _window_sql(db: PgliteTimescale, symbol: str, start: int, end: int) -> tuple[Sums, bool]:
    """GetVwap's read for ``[start, end)``: the service's SQL, pieces and parameters."""
    sql, args = to_dollar_params(TIMESCALE.window, _piece_params(symbol, plan_pieces(start, end)))
    [(notional, volume, count, _verified_until, known, _verified_from)] = db.query(sql, args)
    assert notional is not None
    assert volume is not None
    assert count is not None
    sums = Sums(_scaled(Decimal(notional)), _scaled(Decimal(volume)), int(count))
    return sums, known == "t"


def _assert_windows_exact(
    db: PgliteTimescale, trades: Sequence[Trade], windows: Iterable[tuple[str, int, int]]
) -> None:
    checked = 0
    for symbol, start, end in windows:
        expected = _brute_force(trades, symbol, start, end)
        got, known = _window_sql(db, symbol, start, end)
        where = f"{symbol} [{dt_from_ms(start)}, {dt_from_ms(end)})"
        assert known, where
        assert got == expected, where
        if expected.count:
            brute = decimal.Context(prec=VWAP_PRECISION, rounding=decimal.ROUND_HALF_EVEN)
            vwap = vwap_quotient(got.notional[0], got.volume[0])
            assert vwap == brute.divide(expected.notional[0], expected.volume[0]), where
        checked += 1
    assert checked


def _text_array(values: Sequence[str]) -> str:
    """PostgreSQL's text form of a text array (every element quoted)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def _assert_batched_windows_exact(
    db: PgliteTimescale, trades: Sequence[Trade], windows: Sequence[tuple[str, int, int]]
) -> None:
    """Every window in ONE batched statement: rows in order, each equal to the brute force
    (value and scale) and to the single-window statement."""
    params = _windows_params([(s, plan_pieces(a, b)) for s, a, b in windows])
    params["symbols"] = _text_array(params["symbols"])
    sql, args = to_dollar_params(TIMESCALE.windows, params)
    rows = db.query(sql, args)
    assert len(rows) == len(windows)
    for n, ((symbol, start, end), row) in enumerate(zip(windows, rows, strict=True), start=1):
        ordinal, notional, volume, count, _verified_until, known, _verified_from = row
        where = f"{symbol} [{dt_from_ms(start)}, {dt_from_ms(end)})"
        assert int(str(ordinal)) == n, where
        assert notional is not None
        assert volume is not None
        assert count is not None
        got = Sums(_scaled(Decimal(notional)), _scaled(Decimal(volume)), int(count))
        assert got == _brute_force(trades, symbol, start, end), where
        assert (got, known == "t") == _window_sql(db, symbol, start, end), where
    assert len({s for s, _, _ in windows}) == len(SYMBOLS)


def _assert_windows_cover_the_cases(
    trades: Sequence[Trade], windows: Sequence[tuple[str, int, int]]
) -> None:
    """The windows include empty ones, single trades, big ones, and read every level."""
    counts = [_brute_force(trades, s, a, b).count for s, a, b in windows]
    assert counts.count(0) >= 2 * len(SYMBOLS)
    assert counts.count(1) >= 3 * len(SYMBOLS)
    assert max(counts) > 100
    kinds = {p.level for s, a, b in windows for p in plan_pieces(a, b)}
    assert kinds == set(Level)  # raw, 10-second, minute, hour and day pieces all read


def _insert(db: PgliteTimescale, trades: Sequence[Trade]) -> None:
    """Multi-row INSERTs with text parameters (PGlite has no COPY FROM STDIN)."""
    for i in range(0, len(trades), 250):
        chunk = trades[i : i + 250]
        rows = ", ".join(
            "(" + ", ".join(f"${6 * r + c}" for c in range(1, 7)) + ")" for r in range(len(chunk))
        )
        params: list[str | None] = []
        for t in chunk:
            params += [
                t.symbol,
                str(t.trade_id),
                dt_from_ms(t.ts_ms).isoformat(),
                format(t.price, "f"),
                format(t.quantity, "f"),
                "rest",
            ]
        db.query(f"INSERT INTO trades ({COLUMNS}) VALUES {rows}", params)


def _refresh(db: PgliteTimescale, times: Iterable[int]) -> None:
    """Refresh 10s, 1m, then 1h, then 1d over the range of ``times`` aligned to each level."""
    stamps = list(times)
    for view, width in LEVELS.items():
        start = min(stamps) - min(stamps) % width
        end = max(stamps) - max(stamps) % width + width
        db.query(
            "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)",
            [view, dt_from_ms(start).isoformat(), dt_from_ms(end).isoformat()],
        )


def _materialised_rows(db: PgliteTimescale, view: str) -> int:
    [(table,)] = db.query(
        "SELECT format('%I.%I', materialization_hypertable_schema, "
        "  materialization_hypertable_name) "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
        [view],
    )
    [(count,)] = db.query(f"SELECT count(*) FROM {table}")
    return int(str(count))


def test_window_sql_is_exact_with_real_time_aggregation(timescale: PgliteTimescale) -> None:
    """Before any refresh, the window SQL equals the brute force for random windows."""
    trades = _make_trades(seed=11)
    windows = _make_windows(trades, seed=12)
    _assert_windows_cover_the_cases(trades, windows)
    _insert(timescale, trades)
    assert _materialised_rows(timescale, "trade_buckets_1m") == 0
    _assert_windows_exact(timescale, trades, windows)
    _assert_batched_windows_exact(timescale, trades, windows)


def test_window_sql_is_exact_after_bottom_up_refresh(timescale: PgliteTimescale) -> None:
    """After refreshing 10s, 1m, 1h, 1d, the window SQL equals the brute force for random
    windows."""
    trades = _make_trades(seed=21)
    windows = _make_windows(trades, seed=22)
    _assert_windows_cover_the_cases(trades, windows)
    _insert(timescale, trades)
    _refresh(timescale, (t.ts_ms for t in trades))
    for view in LEVELS:
        assert _materialised_rows(timescale, view) > 0, view
    _assert_windows_exact(timescale, trades, windows)
    _assert_batched_windows_exact(timescale, trades, windows)


@dataclass(frozen=True, slots=True)
class Corrections:
    """Updates (new price and quantity), deletions and late inserts of trades."""

    updated: list[Trade]
    deleted: list[Trade]
    inserted: list[Trade]

    def apply(self, trades: Sequence[Trade]) -> list[Trade]:
        """The trades after the corrections."""
        new = {(t.symbol, t.trade_id): t for t in self.updated}
        gone = {(t.symbol, t.trade_id) for t in self.deleted}
        kept = [new.get((t.symbol, t.trade_id), t) for t in trades]
        return [t for t in kept if (t.symbol, t.trade_id) not in gone] + self.inserted

    def times(self) -> list[int]:
        return [t.ts_ms for t in (*self.updated, *self.deleted, *self.inserted)]


def _make_corrections(trades: Sequence[Trade], seed: int) -> Corrections:
    """Reprice some trades, delete others (one whole minute), add late trades and bursts."""
    rng = random.Random(seed)
    picked = rng.sample(list(trades), 60)
    updated = [
        replace(t, price=t.price * 3 + Decimal("0.0001"), quantity=Decimal("0.50"))
        for t in picked[:25]
    ]
    deleted = picked[25:]
    minute = picked[0].ts_ms - picked[0].ts_ms % MINUTE_MS
    deleted += [
        t
        for t in trades
        if t.symbol == picked[0].symbol
        and minute <= t.ts_ms < minute + MINUTE_MS
        and t not in deleted
        and t.trade_id not in {u.trade_id for u in updated if u.symbol == t.symbol}
    ]
    inserted: list[Trade] = []
    for t in rng.sample(list(trades), 20):
        late = t.ts_ms + rng.choice((0, 0, 1, -1, rng.randrange(-HOUR_MS, HOUR_MS)))
        inserted.append(Trade(t.symbol, t.trade_id + 10**13, late, Decimal("7.125"), Decimal(1)))
    for symbol in SYMBOLS:
        at = BASE_MS + rng.randrange(DAYS * DAY_MS)
        inserted += [
            Trade(symbol, 10**14 + k, at, Decimal("1.5") + k, Decimal("2.000")) for k in range(4)
        ]
    return Corrections(updated, deleted, inserted)


def _correct(db: PgliteTimescale, corrections: Corrections) -> None:
    for t in corrections.updated:
        db.query(
            "UPDATE trades SET price = $1, quantity = $2 WHERE symbol = $3 AND trade_id = $4",
            [format(t.price, "f"), format(t.quantity, "f"), t.symbol, str(t.trade_id)],
        )
    for t in corrections.deleted:
        db.query(
            "DELETE FROM trades WHERE symbol = $1 AND trade_id = $2", [t.symbol, str(t.trade_id)]
        )
    _insert(db, corrections.inserted)


def test_window_sql_is_exact_after_corrections_and_refresh(timescale: PgliteTimescale) -> None:
    """Corrections in the materialised region give brute-force sums while their range is
    queued for a refresh (stale buckets summed from trades) and once refreshed bottom-up."""
    trades = _make_trades(seed=31)
    _insert(timescale, trades)
    _refresh(timescale, (t.ts_ms for t in trades))
    corrections = _make_corrections(trades, seed=32)
    corrected = corrections.apply(trades)
    windows = _make_windows(corrected, seed=33)
    _assert_windows_cover_the_cases(corrected, windows)
    changed = [w for w in windows if _brute_force(trades, *w) != _brute_force(corrected, *w)]
    assert len(changed) >= len(SYMBOLS)
    _correct(timescale, corrections)
    # Whole materialised buckets are stale until refreshed: the test must see the refresh.
    stale = [w for w in changed if _window_sql(timescale, *w)[0] != _brute_force(corrected, *w)]
    assert stale
    # The processor queues the changed range with the change; reads then sum those buckets
    # from the trades: exact before the refresh too.
    times = corrections.times()
    timescale.query(
        "INSERT INTO aggregate_refresh_queue (start_ts, end_ts) VALUES ($1, $2)",
        [dt_from_ms(min(times)).isoformat(), dt_from_ms(max(times) + 1).isoformat()],
    )
    _assert_windows_exact(timescale, corrected, windows)
    _assert_batched_windows_exact(timescale, corrected, windows)
    _refresh(timescale, times)
    timescale.query("DELETE FROM aggregate_refresh_queue")
    _assert_windows_exact(timescale, corrected, windows)
    _assert_batched_windows_exact(timescale, corrected, windows)


def test_a_refresh_near_now_leaves_later_trades_in_the_aggregates(
    timescale: PgliteTimescale,
) -> None:
    """A trade stored late near now is queued and refreshed as the reconciler does
    (``refresh_calls``); a trade stored on time afterwards in the same minute, hour and day
    (not queued) must be in every window. The refresh used to widen the range to whole
    buckets at every level, materialising the current hour and day: their watermarks moved
    past now, and the on-time trade was missing from them until a policy next ran."""
    at = _db_now(timescale) - 20_000
    late = [Trade(symbol, 1, at, Decimal("100"), Decimal(1)) for symbol in SYMBOLS]
    _insert(timescale, late)
    for view, lo, hi in refresh_calls(at, at + 1, _db_now(timescale)):
        timescale.query(
            "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)",
            [view, dt_from_ms(lo).isoformat(), dt_from_ms(hi).isoformat()],
        )
    assert _materialised_rows(timescale, "trade_buckets_10s") == len(SYMBOLS)  # refreshed
    now = _db_now(timescale)
    on_time = [Trade(symbol, 2, now - 1_000, Decimal("200"), Decimal(3)) for symbol in SYMBOLS]
    _insert(timescale, on_time)
    trades = late + on_time
    windows = [
        (t.symbol, t.ts_ms - t.ts_ms % width, t.ts_ms - t.ts_ms % width + width)
        for t in trades
        for width in (MINUTE_MS, HOUR_MS, DAY_MS)
    ]
    windows += [(s, now - span, now + 1) for s in SYMBOLS for span in (5 * MINUTE_MS, DAY_MS)]
    # the still-filling hour and day were not materialised
    assert _materialised_rows(timescale, "trade_buckets_1h") == 0
    assert _materialised_rows(timescale, "trade_buckets_1d") == 0
    _assert_windows_exact(timescale, trades, windows)
    _assert_batched_windows_exact(timescale, trades, windows)


def _db_now(db: PgliteTimescale) -> int:
    [(now,)] = db.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    return int(str(now))
