"""Benchmark: what reconciliation costs: REST requests per 100 trades in steady state, and the
time to verify after a WebSocket outage, each against its no-outage baseline in the same run.

The simulator (``flaky`` profile: WebSocket faults, REST median 0.5 s with slow, failing and
throttled requests), the proxy and the processor run in this process with their production
defaults (1 min reconciliation windows, 10 s settle delay); the processor's feed goes through
:class:`bench.tcp_cut.TcpCut`, which aborts it and refuses reconnects for ``--outage-s``.

- REST cost: ``/trades`` requests the simulator served (retries and hedges included) while
  ``min(verified_until)`` advanced over a range, per 100 true trades in that range; steady
  state, and for the range that covered the outage.
- Time to verify: from an instant P until every symbol's ``verified_until`` passes P. The
  baseline P is an ordinary instant; the measured P is the end of the outage. Both lie at the
  same phase of the window grid (mid-window), so the floor is the same for both: the rest of
  the window + settle delay + fetch. What the outage adds is reconnecting and re-fetching.

Correctness: stored trades over every verified range measured (the outage included) equal the
simulator's truth exactly, all marked verified.

    python -m bench.reconcile_cost [--quick] [--outage-s 60] [--rate 20]
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.report import bench_parser, finish, rounded
from bench.servers import nats_server, postgres_server
from bench.tcp_cut import TcpCut
from devstack.postgres import temporary_database
from processor.app import RunningProcessor, run_processor
from processor.config import SETTINGS, ProcessorConfig
from proxy.app import run_proxy
from proxy.config import load_config as load_proxy_config
from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig
from simulator.tape import TapeParams
from tradekit.config import Env

NAME = "reconcile_cost"
SYMBOLS = ("BTC", "ETH")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TARGET_REQUESTS_PER_100 = 10.0
TARGET_VERIFY_RATIO = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Reconciliation settings of one run."""

    window_ms: int
    settle_ms: int
    interval_ms: int
    backoff_max_ms: int
    stale_ms: int
    #: The simulator's REST lag (a trade shows on REST this long after it happens); must stay
    #: below the settle delay or windows are verified before REST has all their trades.
    rest_lag_ms: int


#: The processor's and simulator's defaults.
FULL = Timing(
    window_ms=60_000,
    settle_ms=10_000,
    interval_ms=5_000,
    backoff_max_ms=10_000,
    stale_ms=10_000,
    rest_lag_ms=2_000,
)
#: The processor tests' fast settings.
QUICK = Timing(
    window_ms=2_000,
    settle_ms=1_500,
    interval_ms=300,
    backoff_max_ms=200,
    stale_ms=2_000,
    rest_lag_ms=500,
)


def now_ms() -> int:
    """The wall clock (the simulator's clock too)."""
    return time.time_ns() // 1_000_000


def dt(ms: int) -> datetime:
    """A timestamptz value from epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


async def verified_until(db: str) -> int:
    """The lowest reconciliation watermark over the symbols (0 before all have one)."""
    async with await psycopg.AsyncConnection.connect(db) as conn:
        cur = await conn.execute("SELECT symbol, verified_until FROM symbols")
        rows = await cur.fetchall()
    if {r[0] for r in rows} != set(SYMBOLS):
        return 0
    return min(int((r[1] - EPOCH) // timedelta(milliseconds=1)) for r in rows)


async def wait_verified(db: str, target_ms: int, timeout_s: float) -> tuple[float, int]:
    """Wait until every symbol is verified past ``target_ms``; monotonic time and watermark."""
    deadline = time.monotonic() + timeout_s
    while (mark := await verified_until(db)) < target_ms:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not verified past {target_ms} within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic(), mark


async def sleep_until_wall(target_ms: int) -> None:
    """Sleep until the wall clock reads ``target_ms``."""
    await asyncio.sleep(max(0.0, (target_ms - now_ms()) / 1000))


def mid_window_after(ms: int, window_ms: int) -> int:
    """The first mid-window instant (``k * window + window / 2``) at or after ``ms``."""
    base = ms - ms % window_ms + window_ms // 2
    return base if base >= ms else base + window_ms


async def store_matches_truth(sim: RunningSimulator, db: str, start_ms: int, end_ms: int) -> bool:
    """Stored trades in ``[start, end)`` equal the simulator's truth exactly, all verified."""
    async with await psycopg.AsyncConnection.connect(db) as conn:
        for symbol in SYMBOLS:
            cur = await conn.execute(
                "SELECT trade_id, ts, price, quantity, verified FROM trades"
                " WHERE symbol = %s AND ts >= %s AND ts < %s ORDER BY ts, trade_id",
                (symbol, dt(start_ms), dt(end_ms)),
            )
            stored = await cur.fetchall()
            truth = sim.truth.trades(symbol, start_ms, end_ms)
            if [(r[0], r[1], r[2], r[3]) for r in stored] != [
                (t.trade_id, dt(t.ts), t.price, t.quantity) for t in truth
            ] or not all(r[4] for r in stored):
                return False
    return True


class Cost:
    """REST requests served and true trades, over a range of ``verified_until``."""

    def __init__(self, sim: RunningSimulator, start_ms: int) -> None:
        self._sim = sim
        self.start_ms = start_ms
        self._requests = sim.stats.rest.requests_total

    def per_100(self, end_ms: int) -> dict[str, Any]:
        """Requests since the start, per 100 true trades in ``[start, end_ms)``."""
        requests = self._sim.stats.rest.requests_total - self._requests
        trades = sum(len(self._sim.truth.trades(s, self.start_ms, end_ms)) for s in SYMBOLS)
        return {
            "range_ms": [self.start_ms, end_ms],
            "rest_requests": requests,
            "true_trades": trades,
            "requests_per_100_trades": rounded(100 * requests / max(1, trades), 2),
        }


def processor_env(
    cut: TcpCut, proxy: str, db: str, nats_url: str, timing: Timing
) -> dict[str, str]:
    """The processor wired to the simulator through the cut-able forwarder."""
    return {
        "PROCESSOR_PORT": "0",
        "DATABASE_URL": db,
        "STORAGE_MODE": "plain",
        "NATS_URL": nats_url,
        "NATS_STREAM": f"BENCH{time.monotonic_ns()}",
        "PROVIDER_WS_URL": f"ws://127.0.0.1:{cut.port}/stream",
        "PROXY_ADDRESS": proxy,
        "SYMBOLS": ",".join(SYMBOLS),
        "RECONCILE_WINDOW": f"{timing.window_ms}ms",
        "SETTLE_DELAY": f"{timing.settle_ms}ms",
        "RECONCILE_INTERVAL": f"{timing.interval_ms}ms",
        "FEED_BACKOFF_MAX": f"{timing.backoff_max_ms}ms",
        "FEED_STALE_TIMEOUT": f"{timing.stale_ms}ms",
        "LOG_LEVEL": "warning",
    }


async def measure(
    sim: RunningSimulator,
    cut: TcpCut,
    processor: RunningProcessor,
    db: str,
    *,
    timing: Timing,
    outage_s: float,
) -> dict[str, Any]:
    """Baseline point, steady-state cost, outage, recovery; figures and checks."""
    w = timing.window_ms
    timeout_s = 3 * (w + timing.settle_ms) / 1000 + outage_s + 60
    _, start = await wait_verified(db, 1, timeout_s)  # every symbol has a watermark
    cost = Cost(sim, start)
    baseline_p = mid_window_after(now_ms(), w)
    await sleep_until_wall(baseline_p)
    p_mono = time.monotonic()
    done, base_mark = await wait_verified(db, baseline_p, timeout_s)
    baseline_s = done - p_mono
    outage_end = mid_window_after(now_ms() + int(outage_s * 1000), w)
    outage_start = outage_end - int(outage_s * 1000)
    await sleep_until_wall(outage_start)
    steady_mark = await verified_until(db)
    steady = cost.per_100(steady_mark)
    recovery = Cost(sim, steady_mark)
    connections = processor.counters.connections
    cut_began = now_ms()
    await cut.outage(outage_s)
    end_mono, cut_ended = time.monotonic(), now_ms()
    reconnected = 0.0
    while processor.counters.connections == connections:
        await asyncio.sleep(0.02)
        reconnected = time.monotonic() - end_mono
        if reconnected > timeout_s:
            break
    done, outage_mark = await wait_verified(db, cut_ended, timeout_s)
    verify_s = done - end_mono
    after = recovery.per_100(outage_mark)
    checks = {
        "steady_range_equals_truth": await store_matches_truth(sim, db, start, steady_mark),
        "outage_range_equals_truth": await store_matches_truth(sim, db, steady_mark, outage_mark),
        "outage_range_covered": steady_mark <= cut_began and outage_mark >= cut_ended,
        "feed_reconnected": processor.counters.connections > connections,
    }
    return {
        "baseline_verify_s": rounded(baseline_s, 2),
        "baseline_point_ms": baseline_p,
        "baseline_watermark_ms": base_mark,
        "outage": {
            "planned_s": outage_s,
            "began_ms": cut_began,
            "ended_ms": cut_ended,
            "connections_aborted": cut.aborted,
        },
        "reconnect_after_outage_s": rounded(reconnected, 2),
        "verify_after_outage_s": rounded(verify_s, 2),
        "steady_state_cost": steady,
        "outage_recovery_cost": after,
        "checks": checks,
    }


async def bench(
    *, rate: float, outage_s: float, timing: Timing, profile: str, pg_url: str, nats_url: str
) -> dict[str, Any]:
    """One run through the real chain."""
    sim_config = SimConfig.for_profile(
        profile,
        port=0,
        seed=5,
        tickers=SYMBOLS,
        tape=dataclasses.replace(TapeParams(), rate=rate),
        rest_lag_ms=timing.rest_lag_ms,
        shutdown_timeout_s=0.1,
        log_level="WARNING",
    )
    with temporary_database(pg_url, "bench_reconcile") as db:
        async with run_simulator(sim_config) as sim, TcpCut("127.0.0.1", sim.port) as cut:
            proxy_cfg = load_proxy_config({"PROXY_PORT": "0", "PROVIDER_REST_URL": sim.base_url})
            async with run_proxy(proxy_cfg) as proxy:
                env = processor_env(cut, proxy, db, nats_url, timing)
                config = ProcessorConfig.from_env(Env(SETTINGS, env))
                async with run_processor(config) as processor:
                    figures = await measure(
                        sim, cut, processor, db, timing=timing, outage_s=outage_s
                    )
                    counters = processor.counters.snapshot()
                rest = sim.stats.snapshot()["rest"]
        await _drop_stream(nats_url, config.nats_stream)
    steady = figures["steady_state_cost"]["requests_per_100_trades"]
    base_s, verify_s = figures["baseline_verify_s"], figures["verify_after_outage_s"]
    ratio = verify_s / max(base_s, 1e-3)
    return {
        "benchmark": NAME,
        "headline": (
            f"{steady} REST requests per 100 trades (steady); verified {verify_s} s after a "
            f"{outage_s:g} s outage vs {base_s} s without = {ratio:.2f}x"
        ),
        "target": (
            f"<= {TARGET_REQUESTS_PER_100:g} requests per 100 trades and verify after the "
            f"outage within {TARGET_VERIFY_RATIO:g}x the no-outage lag"
        ),
        "target_met": steady <= TARGET_REQUESTS_PER_100 and ratio <= TARGET_VERIFY_RATIO,
        "checks": figures.pop("checks"),
        "config": {
            "profile": profile,
            "symbols": list(SYMBOLS),
            "tape_rate_per_symbol": rate,
            "outage_s": outage_s,
            **dataclasses.asdict(timing),
            "proxy": "defaults",
            "cores": len(os.sched_getaffinity(0)),
        },
        "requests_per_100_trades": steady,
        "verify_ratio_outage_over_baseline": rounded(ratio, 2),
        **figures,
        "simulator_rest": rest,
        "processor_counters": counters,
    }


async def _drop_stream(nats_url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write ``--out``."""
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--outage-s", type=float, default=60.0, help="WebSocket outage length")
    parser.add_argument("--rate", type=float, default=20.0, help="tape trades/s per symbol")
    parser.add_argument("--profile", default="flaky", help="simulator fault profile")
    args = parser.parse_args(argv)
    timing = FULL
    if args.quick:
        args.outage_s, timing = 5.0, QUICK

    async def run() -> dict[str, Any]:
        with postgres_server() as pg_url, nats_server() as nats_url:
            return await bench(
                rate=args.rate,
                outage_s=args.outage_s,
                timing=timing,
                profile=args.profile,
                pg_url=pg_url,
                nats_url=nats_url,
            )

    return finish(asyncio.run(run()), args.out)


if __name__ == "__main__":
    sys.exit(main())
