"""StreamVwap subscribers in their own process (own GIL), spread over a few channels.

    python -m bench.fanout_client --address 127.0.0.1:50053 --subscribers 1000 --channels 8

Subscriber ``i`` follows symbol ``i mod len(symbols)``. Prints ``ready`` once every subscriber
has received an update (they are all attached), then obeys stdin:

- ``mark <seq>``: forget everything so far; count only updates with a sequence above ``seq``;
  prints ``marked``;
- ``until <SYM>=<seq>,...``: wait until every subscriber has the live update of its symbol's
  last sequence (or a timeout), then print one JSON line: update counts per symbol, delivery
  latencies (receive wall time - trade time, where trade time = live ``end_time`` - 1 ms) and
  the last live point each subscriber holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
from trading.v1 import vwap_pb2, vwap_pb2_grpc

from bench.report import percentile, rounded
from tradekit.wire import duration_from_ms

LastPoint = tuple[str, str, int, str]


class Subscriber:
    """One StreamVwap call's tally since the mark."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.updates = 0
        self.live = 0
        self.live_seq = 0
        self.last: LastPoint | None = None
        self.ended: str | None = None
        self.progress = asyncio.Event()


class Tally:
    """All subscribers, the mark, and the latencies of live updates after it."""

    def __init__(self) -> None:
        self.mark = 0
        self.latencies_ms: list[float] = []
        self.subscribers: list[Subscriber] = []

    def reset(self, mark: int) -> None:
        """Count from ``mark`` (exclusive) on."""
        self.mark = mark
        self.latencies_ms = []
        for sub in self.subscribers:
            sub.updates = sub.live = 0


async def follow(stub: Any, sub: Subscriber, tally: Tally, window_ms: int, step_ms: int) -> None:
    """Read one stream until it ends, tallying each message."""
    request = vwap_pb2.StreamVwapRequest(
        symbols=[sub.symbol], window=duration_from_ms(window_ms), step=duration_from_ms(step_ms)
    )
    try:
        async for msg in stub.StreamVwap(request):
            now = time.time()
            if not msg.HasField("update"):
                continue
            update = msg.update
            if update.sequence <= tally.mark:
                sub.progress.set()
                continue
            sub.updates += 1
            if not update.closed:
                point = update.point
                end_ms = point.end_time.seconds * 1000 + point.end_time.nanos // 1_000_000
                tally.latencies_ms.append((now - (end_ms - 1) / 1000) * 1000)
                sub.live += 1
                sub.live_seq = update.sequence
                sub.last = (point.notional, point.volume, point.trade_count, point.vwap)
            sub.progress.set()
        sub.ended = "stream ended"
    except grpc.aio.AioRpcError as exc:
        sub.ended = f"{exc.code().name}: {exc.details()}"
    sub.progress.set()


async def wait_all(tally: Tally, done: Any, timeout_s: float) -> bool:
    """Wait until ``done(sub)`` holds for every subscriber; False on timeout."""
    deadline = time.monotonic() + timeout_s
    for sub in tally.subscribers:
        while not done(sub) and sub.ended is None:
            sub.progress.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(sub.progress.wait(), remaining)
            except TimeoutError:
                return False
    return True


def report(tally: Tally, finals: dict[str, int], complete: bool) -> dict[str, Any]:
    """The JSON line answering ``until``."""
    counts: dict[str, list[int]] = {}
    live: dict[str, list[int]] = {}
    lasts: dict[str, list[LastPoint | None]] = {}
    for sub in tally.subscribers:
        counts.setdefault(sub.symbol, []).append(sub.updates)
        live.setdefault(sub.symbol, []).append(sub.live)
        if sub.last not in lasts.setdefault(sub.symbol, []):
            lasts[sub.symbol].append(sub.last)
    lat = tally.latencies_ms
    return {
        "complete": complete,
        "subscribers": len(tally.subscribers),
        "ended": sum(1 for sub in tally.subscribers if sub.ended is not None),
        "lagging": sum(1 for s in tally.subscribers if s.live_seq < finals.get(s.symbol, 0)),
        "update_counts": {sym: sorted(set(c)) for sym, c in counts.items()},
        "live_update_counts": {sym: sorted(set(c)) for sym, c in live.items()},
        "cpu_s": rounded(time.process_time(), 2),
        "last_points": lasts,
        "latency_samples": len(lat),
        "latency_ms": {
            "p50": rounded(percentile(lat, 50), 2) if lat else None,
            "p90": rounded(percentile(lat, 90), 2) if lat else None,
            "p99": rounded(percentile(lat, 99), 2) if lat else None,
            "max": rounded(max(lat), 2) if lat else None,
        },
    }


async def serve(args: argparse.Namespace) -> None:
    """Subscribe, report readiness, obey stdin until it closes."""
    symbols = args.symbols.split(",")
    tally = Tally()
    channels = [grpc.aio.insecure_channel(args.address) for _ in range(args.channels)]
    stubs = [vwap_pb2_grpc.VwapServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
    tally.subscribers = [Subscriber(symbols[i % len(symbols)]) for i in range(args.subscribers)]
    async with asyncio.TaskGroup() as tasks:
        readers = [
            tasks.create_task(
                follow(stubs[i % len(stubs)], sub, tally, args.window_ms, args.step_ms)
            )
            for i, sub in enumerate(tally.subscribers)
        ]
        ok = await wait_all(tally, lambda s: s.progress.is_set(), timeout_s=120)
        print("ready" if ok else "not-ready", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, _, arg = line.strip().partition(" ")
            if command == "mark":
                tally.reset(int(arg))
                print("marked", flush=True)
            elif command == "until":
                finals = {k: int(v) for k, v in (p.split("=") for p in arg.split(","))}
                complete = await wait_all(
                    tally, lambda s, f=finals: s.live_seq >= f.get(s.symbol, 0), args.timeout_s
                )
                print(json.dumps(report(tally, finals, complete)), flush=True)
        for reader in readers:
            reader.cancel()
    for channel in channels:
        await channel.close(None)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--symbols", default="BTC,ETH")
    parser.add_argument("--window-ms", type=int, default=3_600_000)
    parser.add_argument("--step-ms", type=int, default=60_000)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
