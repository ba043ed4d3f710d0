"""StreamVwap subscribers in their own process (own GIL), spread over a few channels.

    python -m bench.fanout_client --address 127.0.0.1:50053 --subscribers 1000 --channels 8

Subscriber ``i`` follows symbol ``i mod len(symbols)``. Prints ``ready`` once every subscriber
has received an update (they are all attached), then obeys stdin:

- ``mark <seq>``: forget everything so far; count only updates with a sequence above ``seq``;
  prints ``marked``;
- ``until <json>``: ``{"finals": {symbol: seq}, "trades": [[symbol, seq, ts_ms], ...]}`` (the
  trades sent after the mark): wait until every subscriber has the live update of its symbol's
  last sequence (or a timeout), then print one JSON line: update counts per symbol, the
  conflation ratio, delivery latencies and the last live point each subscriber holds.

Latency is measured for EVERY trade and every subscriber of its symbol, conflated or not: a
live point with sequence ``s`` includes every trade of its symbol up to ``s``, so a trade is
delivered to a subscriber by the first live update it receives with a sequence at or above the
trade's; latency = that receive wall time - the trade's time. (A conflated trade is therefore
measured when the newer point that includes it arrives.)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
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
#: [symbol, sequence, ts_ms] of a trade sent after the mark.
SentTrade = tuple[str, int, int]


class Subscriber:
    """One StreamVwap call's tally since the mark."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.updates = 0
        self.closed = 0
        #: Sequences and receive wall times (s) of the live updates since the mark.
        self.live_seqs: list[int] = []
        self.live_times: list[float] = []
        self.live_seq = 0
        self.out_of_order = 0
        self.last: LastPoint | None = None
        self.ended: str | None = None
        self.progress = asyncio.Event()


class Tally:
    """All subscribers and the mark."""

    def __init__(self) -> None:
        self.mark = 0
        self.subscribers: list[Subscriber] = []

    def reset(self, mark: int) -> None:
        """Count from ``mark`` (exclusive) on."""
        self.mark = mark
        for sub in self.subscribers:
            sub.updates = sub.closed = sub.out_of_order = 0
            sub.live_seqs, sub.live_times = [], []


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
            if update.closed:
                sub.closed += 1
            else:
                if update.sequence <= sub.live_seq:
                    sub.out_of_order += 1
                point = update.point
                sub.live_seqs.append(update.sequence)
                sub.live_times.append(now)
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


def trade_latencies(
    sub: Subscriber, trades: Sequence[SentTrade]
) -> tuple[list[float], list[float], int]:
    """(latency of every trade of ``sub``'s symbol, latency of the newest trade of each
    update received, trades never delivered) in ms."""
    every: list[float] = []
    own: list[float] = []
    undelivered = 0
    for symbol, seq, ts_ms in trades:
        if symbol != sub.symbol:
            continue
        at = bisect.bisect_left(sub.live_seqs, seq)
        if at == len(sub.live_seqs):
            undelivered += 1
            continue
        latency = (sub.live_times[at] - ts_ms / 1000) * 1000
        every.append(latency)
        if sub.live_seqs[at] == seq:
            own.append(latency)
    return every, own, undelivered


def _summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": rounded(percentile(values, 50), 2) if values else None,
        "p90": rounded(percentile(values, 90), 2) if values else None,
        "p99": rounded(percentile(values, 99), 2) if values else None,
        "max": rounded(max(values), 2) if values else None,
    }


def report(
    tally: Tally, finals: dict[str, int], trades: Sequence[SentTrade], complete: bool
) -> dict[str, Any]:
    """The JSON line answering ``until``."""
    closed: dict[str, list[int]] = {}
    live: dict[str, list[int]] = {}
    lasts: dict[str, list[LastPoint | None]] = {}
    every: list[float] = []
    own: list[float] = []
    undelivered = 0
    for sub in tally.subscribers:
        closed.setdefault(sub.symbol, []).append(sub.closed)
        live.setdefault(sub.symbol, []).append(len(sub.live_seqs))
        if sub.last not in lasts.setdefault(sub.symbol, []):
            lasts[sub.symbol].append(sub.last)
        sub_every, sub_own, sub_missing = trade_latencies(sub, trades)
        every += sub_every
        own += sub_own
        undelivered += sub_missing
    sent = {sym: sum(1 for t in trades if t[0] == sym) for sym in live}
    due = sum(sent[sub.symbol] for sub in tally.subscribers)
    delivered = sum(len(sub.live_seqs) for sub in tally.subscribers)
    return {
        "complete": complete,
        "subscribers": len(tally.subscribers),
        "ended": sum(1 for sub in tally.subscribers if sub.ended is not None),
        "lagging": sum(1 for s in tally.subscribers if s.live_seq < finals.get(s.symbol, 0)),
        "closed_update_counts": {sym: sorted(set(c)) for sym, c in closed.items()},
        "live_update_counts": {sym: [min(c), max(c)] for sym, c in live.items()},
        "live_updates_due": due,
        "live_updates_delivered": delivered,
        # Share of (trade, subscriber) live updates replaced by a newer point before sending.
        "conflation_ratio": rounded(1 - delivered / due, 4) if due else 0.0,
        "out_of_order": sum(sub.out_of_order for sub in tally.subscribers),
        "undelivered_trades": undelivered,
        "cpu_s": rounded(time.process_time(), 2),
        "last_points": lasts,
        "latency_samples": len(every),
        # Every trade, for every subscriber of its symbol (conflated ones included).
        "latency_ms": _summary(every),
        # Only the trades whose own live update was delivered (not conflated).
        "unconflated_latency_ms": _summary(own),
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
                # A thousand clients share this process: keep the collector's full passes over
                # the long-lived streams out of the measured latencies.
                gc.collect()
                gc.freeze()
                print("marked", flush=True)
            elif command == "until":
                request = json.loads(arg)
                finals: dict[str, int] = request["finals"]
                trades = [(str(s), int(q), int(t)) for s, q, t in request["trades"]]
                complete = await wait_all(
                    tally, lambda s, f=finals: s.live_seq >= f.get(s.symbol, 0), args.timeout_s
                )
                print(json.dumps(report(tally, finals, trades, complete)), flush=True)
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
