"""Benchmark: VWAP over a long range from the aggregates vs a raw scan of ``trades``, same run.

The symbol BTC holds >= 1 million trades over three days (COPY into a plain-mode store, the
statement triggers keeping the 1m/1h/1d aggregates). For random, unaligned ranges covering
most of it, the VWAP service's storage path (:func:`vwap.ranges.plan_pieces` then
:meth:`vwap.storage.VwapStore.window`: whole days, hours and minutes from the aggregates, raw
trades at the edges) is timed against ``SELECT sum(price*quantity), sum(quantity), count(*)
FROM trades WHERE ...``; both must give identical ``Decimal`` sums.

    python -m bench.range_vwap [--quick]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg

from bench.dataset import copy_rows, synthetic_rows
from bench.report import bench_parser, finish, rounded
from bench.servers import fresh_database
from processor.schema import migrate
from vwap.ranges import plan_pieces
from vwap.storage import VwapStore, dt_from_ms, open_pool

NAME = "range_vwap"
DAY_MS = 86_400_000
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 1_234_567
RAW_SQL = (
    "SELECT coalesce(sum(price * quantity), 0), coalesce(sum(quantity), 0), count(*)"
    " FROM trades WHERE symbol = %s AND ts >= %s AND ts < %s"
)
TARGET_SPEEDUP = 100


def load(url: str, *, trades: int, span_ms: int) -> float:
    """COPY ``trades`` BTC trades; seconds taken."""
    began = time.perf_counter()
    rows = synthetic_rows(("BTC",), start_ms=START_MS, span_ms=span_ms, per_symbol=trades, seed=3)
    with psycopg.connect(url) as conn:
        copy_rows(conn, rows, batch=200_000)
        conn.execute("ANALYZE")
        conn.commit()
    return time.perf_counter() - began


def raw_scan(url: str, start_ms: int, end_ms: int) -> tuple[float, tuple[Decimal, Decimal, int]]:
    """Seconds and sums of the raw scan over BTC trades in ``[start, end)``."""
    with psycopg.connect(url) as conn:
        began = time.perf_counter()
        row = conn.execute(RAW_SQL, ("BTC", dt_from_ms(start_ms), dt_from_ms(end_ms))).fetchone()
        elapsed = time.perf_counter() - began
    assert row is not None
    return elapsed, (Decimal(row[0]), Decimal(row[1]), int(row[2]))


async def from_aggregates(
    url: str, ranges: Sequence[tuple[int, int]], repeats: int
) -> list[tuple[float, tuple[Decimal, Decimal, int]]]:
    """Per range: the median seconds of ``repeats`` window reads, and their sums."""
    out = []
    async with open_pool(url, min_size=1, max_size=1) as pool:
        store = VwapStore(pool)
        await store.window("BTC", plan_pieces(START_MS, START_MS + 1))  # warm the connection
        for start, end in ranges:
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                read = await store.window("BTC", plan_pieces(start, end))
                times.append(time.perf_counter() - began)
            sums = (read.sums.notional, read.sums.volume, read.sums.count)
            out.append((statistics.median(times), sums))
    return out


def bench(*, trades: int, span_ms: int, ranges: int, seed: int) -> dict[str, Any]:
    """Load, then time both paths over ``ranges`` random ranges."""
    rng = random.Random(seed)
    windows = []
    for _ in range(ranges):
        start = START_MS + rng.randint(0, span_ms // 20)
        end = START_MS + span_ms - rng.randint(0, span_ms // 20)
        windows.append((start, end))
    with fresh_database(NAME) as url:
        asyncio.run(migrate(url, "plain"))
        load_s = load(url, trades=trades, span_ms=span_ms)
        raw_scan(url, *windows[0])  # warm the cache: both paths then read from memory
        raw = [raw_scan(url, s, e) for s, e in windows]
        agg = asyncio.run(from_aggregates(url, windows, repeats=5))
    per_range = [
        {
            "start_ms": s,
            "end_ms": e,
            "trades": r[1][2],
            "raw_ms": rounded(r[0] * 1000, 2),
            "aggregates_ms": rounded(a[0] * 1000, 2),
            "identical": r[1] == a[1],
        }
        for (s, e), r, a in zip(windows, raw, agg, strict=True)
    ]
    raw_ms = statistics.median(p["raw_ms"] for p in per_range)
    agg_ms = statistics.median(p["aggregates_ms"] for p in per_range)
    speedup = raw_ms / agg_ms
    min_trades = min(p["trades"] for p in per_range)
    return {
        "benchmark": NAME,
        "headline": (
            f"range VWAP over >= {min_trades:,} trades: aggregates {agg_ms:.2f} ms vs raw scan "
            f"{raw_ms:.1f} ms (median) = {speedup:.0f}x"
        ),
        "target": f">= {TARGET_SPEEDUP}x faster than the raw scan, identical sums",
        "target_met": speedup >= TARGET_SPEEDUP,
        "checks": {
            "identical_decimal_sums": all(p["identical"] for p in per_range),
            "range_covers_trades": min_trades > 0,
        },
        "config": {"trades_per_symbol": trades, "span_ms": span_ms, "ranges": ranges},
        "load_s": rounded(load_s, 1),
        "load_trades_per_s": rounded(trades / load_s, 0),
        "min_trades_in_range": min_trades,
        "raw_scan_median_ms": raw_ms,
        "aggregates_median_ms": agg_ms,
        "speedup": rounded(speedup, 1),
        "ranges": per_range,
        "notes": (
            "aggregates path = the VWAP service's storage read (plan_pieces + VwapStore.window, "
            "REPEATABLE READ snapshot, one round trip); both paths warm in shared buffers"
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write ``--out``."""
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--trades", type=int, default=1_100_000, help="trades stored")
    parser.add_argument("--ranges", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.trades, args.ranges = 5_000, 2
    result = bench(trades=args.trades, span_ms=3 * DAY_MS, ranges=args.ranges, seed=args.seed)
    return finish(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
