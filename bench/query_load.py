"""The load generator of the query benchmark, run in its own process (its own GIL):
``concurrency`` asyncio clients on one grpc.aio channel call ``GetVwap`` back to back with
random windows for ``warmup + duration`` seconds; prints one JSON line with the measured part.
It also prints ``{"phase": "measure"}`` when the measured part begins and ``{"phase": "stop"}``
when it ends, so the parent can sample CPU times (its own, PostgreSQL's) over the same span.

    python -m bench.query_load --address 127.0.0.1:50053 --concurrency 50 --duration 10 \\
        --symbols BTC,ETH --start-ms ... --end-ms ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from trading.v1 import vwap_pb2, vwap_pb2_grpc

from bench.report import percentile
from tradekit.wire import timestamp_from_ms

MIN_WINDOW_MS = 60_000
MAX_WINDOW_MS = 2 * 3_600_000


def random_request(
    rng: random.Random, symbols: Sequence[str], start_ms: int, end_ms: int
) -> vwap_pb2.GetVwapRequest:
    """A window of 1 min .. 2 h (millisecond resolution) ending inside the data."""
    window = rng.randint(MIN_WINDOW_MS, MAX_WINDOW_MS)
    end = rng.randint(start_ms + window, end_ms)
    return vwap_pb2.GetVwapRequest(
        symbol=rng.choice(symbols),
        end_time=timestamp_from_ms(end),
        window=Duration(seconds=window // 1000, nanos=(window % 1000) * 1_000_000),
    )


async def load(args: argparse.Namespace) -> dict[str, Any]:
    """Run the clients; count and time the calls that finished in the measured part."""
    symbols = args.symbols.split(",")
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    began = loop.time()
    measure_from = began + args.warmup
    stop_at = measure_from + args.duration
    async with grpc.aio.insecure_channel(args.address) as channel:
        stub = vwap_pb2_grpc.VwapServiceStub(channel)  # type: ignore[no-untyped-call]

        async def client(seed: int) -> None:
            nonlocal errors
            rng = random.Random(seed)
            while (now := loop.time()) < stop_at:
                request = random_request(rng, symbols, args.start_ms, args.end_ms)
                t0 = time.perf_counter()
                try:
                    await stub.GetVwap(request, timeout=10)
                except grpc.aio.AioRpcError:
                    if now >= measure_from:
                        errors += 1
                    continue
                if now >= measure_from:
                    latencies.append(time.perf_counter() - t0)

        cpu: list[float] = []

        async def phases() -> None:
            await asyncio.sleep(max(0.0, measure_from - loop.time()))
            cpu.append(time.process_time())
            print(json.dumps({"phase": "measure"}), flush=True)
            await asyncio.sleep(max(0.0, stop_at - loop.time()))
            cpu.append(time.process_time())
            print(json.dumps({"phase": "stop"}), flush=True)

        async with asyncio.TaskGroup() as group:
            group.create_task(phases())
            for n in range(args.concurrency):
                group.create_task(client(args.seed * 1000 + n))
    return {
        "client_cpu_s": cpu[1] - cpu[0],
        "requests": len(latencies),
        "errors": errors,
        "seconds": args.duration,
        "requests_per_s": len(latencies) / args.duration,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--start-ms", type=int, required=True)
    parser.add_argument("--end-ms", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(load(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
