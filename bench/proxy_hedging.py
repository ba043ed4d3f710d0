"""Benchmark: window fetch time through the proxy with hedging off vs on, same run.

The simulator runs the ``tail`` REST profile (answers in ~20 ms, but 5 % take 2-4 s). Two
simulators with the same seed (so the same fault sequence) each get a proxy with the default
settings except hedging: ``PROXY_HEDGE_BUDGET=0`` (off) and the default budget (on). Each
proxy first warms up its latency tracker, then fetches the same windows with a few callers at
once; the script prints and writes p50 / p99 / max of the window fetch time and the p99 ratio.

    python bench/proxy_hedging.py --out bench-results/proxy_hedging.json

The request rate limit is turned off for both runs so that it does not mask latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import stamina
from trading.v1 import proxy_pb2, proxy_pb2_grpc

from proxy.app import run_proxy
from proxy.config import load_config
from simulator.app import run_simulator
from simulator.clock import wall_clock_ms
from simulator.config import SimConfig
from simulator.tape import TapeParams
from tradekit.wire import timestamp_from_ms

WINDOW_MS = 1500
WARMUP_WINDOWS = 40


class SkipClock:
    """The wall clock plus a jump ahead, so the simulator has history at once."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.ahead_ms


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def fetch_window(stub: proxy_pb2_grpc.ProxyServiceStub, start_ms: int) -> tuple[float, int]:
    """Fetch one window; its wall time in seconds and its trade count."""
    request = proxy_pb2.FetchTradesRequest(
        symbol="BTC",
        start_time=timestamp_from_ms(start_ms),
        end_time=timestamp_from_ms(start_ms + WINDOW_MS),
    )
    began = time.perf_counter()
    total = -1
    async for message in stub.FetchTrades(request, timeout=60):
        if message.HasField("complete"):
            total = message.complete.total_trades
    return time.perf_counter() - began, total


async def run_mode(
    name: str, hedge_budget: str, *, seed: int, windows: int, callers: int
) -> dict[str, Any]:
    """Fetch ``windows`` windows through a fresh simulator and proxy; summarize the times."""
    clock = SkipClock()
    sim_config = SimConfig.for_profile(
        "tail",
        port=0,
        seed=seed,
        tickers=("BTC",),
        tape=TapeParams(rate=60.0),
        rest_lag_ms=0,
        shutdown_timeout_s=0.1,
        log_level="WARNING",
    )
    history_ms = (windows + WARMUP_WINDOWS) * WINDOW_MS
    async with run_simulator(sim_config, clock=clock) as sim:
        clock.ahead_ms = history_ms
        sim.hub.release()
        env = {
            "PROVIDER_REST_URL": sim.base_url,
            "PROXY_PORT": "0",
            "PROXY_RATE_LIMIT": "0",
            "PROXY_HEDGE_BUDGET": hedge_budget,
            "PROXY_GRACE": "0s",
        }
        async with (
            run_proxy(load_config(env)) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            stub = proxy_pb2_grpc.ProxyServiceStub(channel)  # type: ignore[no-untyped-call]
            starts = [sim.start_ms + i * WINDOW_MS for i in range(windows + WARMUP_WINDOWS)]
            for start in starts[:WARMUP_WINDOWS]:
                await fetch_window(stub, start)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for start in starts[WARMUP_WINDOWS:]:
                queue.put_nowait(start)
            times: list[float] = []
            trades = 0

            async def caller() -> None:
                nonlocal trades
                while not queue.empty():
                    elapsed, total = await fetch_window(stub, queue.get_nowait())
                    times.append(elapsed)
                    trades += total

            began = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for _ in range(callers):
                    group.create_task(caller())
            wall_s = time.perf_counter() - began
            stats = await stub.GetStats(proxy_pb2.GetStatsRequest())
    return {
        "mode": name,
        "hedge_budget_percent": int(hedge_budget),
        "windows": len(times),
        "trades": trades,
        "wall_s": round(wall_s, 3),
        "p50_ms": round(percentile(times, 50) * 1000, 1),
        "p90_ms": round(percentile(times, 90) * 1000, 1),
        "p99_ms": round(percentile(times, 99) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "requests": stats.requests,
        "timeouts": stats.timeouts,
        "hedges": stats.hedges,
        "hedges_won": stats.hedges_won,
        "attempt_timeout_ms": stats.attempt_timeout.ToMilliseconds(),
        "latency_p95_ms": round(stats.latency_p95.ToNanoseconds() / 1e6, 1),
    }


async def bench(seed: int, windows: int, callers: int) -> dict[str, Any]:
    """Both modes, off first, with the same seed and windows."""
    off = await run_mode("hedging_off", "0", seed=seed, windows=windows, callers=callers)
    on = await run_mode("hedging_on", "10", seed=seed, windows=windows, callers=callers)
    return {
        "benchmark": "proxy_hedging",
        "profile": "tail",
        "seed": seed,
        "window_ms": WINDOW_MS,
        "callers": callers,
        "runs": [off, on],
        "p99_ratio_off_over_on": round(off["p99_ms"] / on["p99_ms"], 2),
        "p50_ratio_off_over_on": round(off["p50_ms"] / on["p50_ms"], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print a table, write JSON to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/proxy_hedging.json"))
    parser.add_argument("--windows", type=int, default=400, help="measured windows per mode")
    parser.add_argument("--callers", type=int, default=4, help="concurrent FetchTrades calls")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    stamina.instrumentation.set_on_retry_hooks([])  # the proxy logs its own failed attempts
    result = asyncio.run(bench(args.seed, args.windows, args.callers))
    columns = ("mode", "windows", "p50_ms", "p90_ms", "p99_ms", "max_ms", "requests", "hedges")
    print(" | ".join(f"{c:>11}" for c in columns))
    for run in result["runs"]:
        print(" | ".join(f"{run[c]!s:>11}" for c in columns))
    print(f"p99 off/on: {result['p99_ratio_off_over_on']}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
