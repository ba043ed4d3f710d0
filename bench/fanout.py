"""Benchmark: StreamVwap fan-out to 1,000 subscribers, delivery latency trade -> update.

A fake ProcessorService (:mod:`bench.fake_events`, a real gRPC server in its own process)
commits trades stamped with the wall clock to a real store (plain mode) and streams their
TradeEvents at a steady rate over two symbols; the real VWAP service (:func:`vwap.app.run_vwap`,
alone in this process with its event follower; the driver here only waits on pipes) follows it
and fans each live update out. The subscribers live in a separate process
(:mod:`bench.fanout_client`), many streams over a few channels, half on each symbol. Latency is
receive time - trade time on the same machine clock (millisecond resolution), for EVERY trade
and every subscriber of its symbol: when a subscriber's pending live point was conflated
(replaced by a newer one before it was sent), the trade is delivered by the newer point, which
includes it, and its latency is measured when that point arrives. The conflation ratio is the
share of (trade, subscriber) live updates that were replaced that way.

Baseline, same run, same service and event source: ONE subscriber per symbol (two streams).
It is the floor of the pipeline (commit, event stream, follower, rolling window, gRPC, client)
at the same trade rate, so the difference to the 1,000-subscriber run is the cost of fanning
out. (Consuming the fake StreamEvents directly with 1,000 clients would measure raw gRPC
streaming instead, leaving out the service under test.)

Correctness: every trade reached every subscriber of its symbol (in a live update of its own
or a newer one), no subscriber received more live updates than trades or any out of sequence
order, every subscriber of a symbol received as many closed points, and every subscriber's last
live point equals a brute-force ``Decimal`` VWAP of every trade of that symbol sent (the 1 h
window covers the whole run).

    python -m bench.fanout [--quick] [--subscribers 1000] [--rate 50] [--duration-s 20]
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from bench.report import bench_parser, finish, rounded
from bench.servers import fresh_database
from processor.schema import migrate
from tradekit.domain import Trade
from tradekit.entry import freeze_startup_heap
from tradekit.money import exact_sum
from vwap.app import run_vwap
from vwap.config import VwapConfig

NAME = "fanout"
TARGET_P99_MS = 100.0
SYMBOLS = ("BTC", "ETH")
WINDOW_MS = 3_600_000
STEP_MS = 60_000


class ChildProcess:
    """Parent side of ``python -m <module>``: start it, talk over stdin/stdout."""

    def __init__(self, module: str, args: Sequence[str]) -> None:
        self._module = module
        self._args = list(args)
        self._proc: asyncio.subprocess.Process | None = None

    async def line(self, timeout_s: float = 180) -> str:
        """The next line the child prints."""
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"the {self._module} process exited")
        return line.decode().strip()

    async def command(self, text: str) -> str:
        """Send one command; its reply line."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(text.encode() + b"\n")
        await self._proc.stdin.drain()
        return await self.line()

    async def __aenter__(self) -> ChildProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self._module,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class EventProcess:
    """The fake event source in its own process (``python -m bench.fake_events``)."""

    def __init__(self, child: ChildProcess, address: str) -> None:
        self._child = child
        #: host:port of its StreamEvents server.
        self.address = address
        #: The sequence of the newest event it streamed.
        self.head = 0

    async def emit(self, symbols: Sequence[str]) -> None:
        """One trade of each symbol, committed and streamed."""
        self.head = int(await self._child.command("emit " + ",".join(symbols)))

    async def steady(self, rate: float, duration_s: float) -> tuple[dict[str, int], float]:
        """``rate`` trades/s alternating symbols for ``duration_s``; the last sequence by symbol
        and the seconds the emission took."""
        reply = json.loads(
            await self._child.command(f"steady {rate} {duration_s} {','.join(SYMBOLS)}")
        )
        last: dict[str, int] = reply["last"]
        self.head = max(self.head, *last.values())
        return last, float(reply["emit_s"])

    async def trades(self) -> list[tuple[Trade, int]]:
        """Every trade emitted, in order, with its event sequence."""
        rows = json.loads(await self._child.command("trades 0"))
        return [
            (Trade(s, int(i), int(ts), Decimal(p), Decimal(q)), int(seq))
            for s, i, ts, p, q, seq in rows
        ]


@asynccontextmanager
async def event_process(database_url: str) -> AsyncIterator[EventProcess]:
    """Start the fake event source in its own process."""
    async with ChildProcess("bench.fake_events", ["--database-url", database_url]) as child:
        word, _, address = (await child.line()).partition(" ")
        if word != "listening":
            raise RuntimeError(f"the event source did not start: {word} {address}")
        yield EventProcess(child, address)


async def warm_up(source: EventProcess, client: ChildProcess) -> float:
    """Emit a trade per symbol every 100 ms until every subscriber got one; seconds taken."""
    began = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        ready = tasks.create_task(client.line())
        while not ready.done():
            await source.emit(SYMBOLS)
            await asyncio.wait([ready], timeout=0.1)
    if ready.result() != "ready":
        raise RuntimeError(f"subscribers never all attached: {ready.result()}")
    return time.monotonic() - began


def brute_force(trades: Sequence[Trade], symbol: str) -> tuple[Decimal, Decimal, int, Decimal]:
    """Exact notional, volume, count and VWAP (30 significant digits, half-even)."""
    mine = [t for t in trades if t.symbol == symbol]
    notional = functools.reduce(exact_sum, (t.notional for t in mine), Decimal(0))
    volume = functools.reduce(exact_sum, (t.quantity for t in mine), Decimal(0))
    vwap = Context(prec=30, rounding=ROUND_HALF_EVEN).divide(notional, volume)
    return notional, volume, len(mine), vwap


def last_point_exact(trades: Sequence[Trade], points: list[Any], symbol: str) -> bool:
    """Every subscriber holds the same last live point and it equals the brute force."""
    if len(points) != 1 or points[0] is None:
        return False
    notional, volume, count, vwap = points[0]
    return (Decimal(notional), Decimal(volume), int(count), Decimal(vwap)) == brute_force(
        trades, symbol
    )


async def phase(
    source: EventProcess,
    address: str,
    *,
    subscribers: int,
    channels: int,
    rate: float,
    duration_s: float,
) -> dict[str, Any]:
    """One measured run with ``subscribers`` streams; its figures and checks."""
    args = ["--address", address, "--subscribers", str(subscribers)]
    args += ["--channels", str(channels), "--symbols", ",".join(SYMBOLS)]
    args += ["--window-ms", str(WINDOW_MS), "--step-ms", str(STEP_MS)]
    async with ChildProcess("bench.fanout_client", args) as client:
        attach_s = await warm_up(source, client)
        mark = source.head
        if await client.command(f"mark {mark}") != "marked":
            raise RuntimeError("the subscriber process did not acknowledge the mark")
        cpu_before = time.process_time()
        finals, emitted_s = await source.steady(rate, duration_s)
        sequenced = await source.trades()
        after_mark = [[t.symbol, seq, t.ts_ms] for t, seq in sequenced if seq > mark]
        reply = await client.command(
            "until " + json.dumps({"finals": finals, "trades": after_mark})
        )
        server_cpu = time.process_time() - cpu_before
    seen: dict[str, Any] = json.loads(reply)
    trades = [t for t, _ in sequenced]
    sent = {s: sum(1 for t, seq in sequenced if seq > mark and t.symbol == s) for s in SYMBOLS}
    per_symbol = subscribers // len(SYMBOLS)
    live_counts = seen["live_update_counts"]
    return {
        "subscribers": subscribers,
        "channels": channels,
        "attach_s": rounded(attach_s, 2),
        "trades_sent": sent,
        "emit_s": rounded(emitted_s, 2),
        # Below the configured rate when the event source's process (or the machine) is
        # saturated: trades are then stamped late, so latencies are understated.
        "trades_per_s_achieved": rounded(sum(sent.values()) / emitted_s, 1),
        "live_updates_due_per_s": rounded(
            sum(sent[s] * max(1, per_symbol) for s in SYMBOLS) / emitted_s, 0
        ),
        "live_updates_delivered_per_s": rounded(seen["live_updates_delivered"] / emitted_s, 0),
        "server_process_cpu_share": rounded(server_cpu / emitted_s, 2),
        "conflation_ratio": seen["conflation_ratio"],
        "client": seen,
        "checks": {
            "all_subscribers_complete": seen["complete"] and seen["ended"] == 0,
            "every_trade_delivered_to_every_subscriber": seen["undelivered_trades"] == 0
            and seen["latency_samples"] == sum(sent.values()) * max(1, per_symbol),
            "live_updates_in_sequence_order": seen["out_of_order"] == 0,
            "at_most_one_live_update_per_trade": all(
                live_counts[s][0] >= 1 and live_counts[s][1] <= sent[s] for s in SYMBOLS
            ),
            "same_closed_point_count_per_symbol": all(
                len(c) == 1 for c in seen["closed_update_counts"].values()
            ),
            "last_live_vwap_equals_brute_force": all(
                last_point_exact(trades, seen["last_points"][s], s) for s in SYMBOLS
            ),
        },
    }


async def bench(
    *, subscribers: int, channels: int, rate: float, duration_s: float
) -> dict[str, Any]:
    """The baseline (one subscriber), then the fan-out run, against one VWAP service."""
    with fresh_database("bench_fanout") as db:
        await migrate(db, "plain")
        async with event_process(db) as source:
            config = VwapConfig(
                port=0,
                database_url=db,
                processor_address=source.address,
                grace_s=0.2,
                log_level="warning",
            )
            async with run_vwap(config) as running:
                freeze_startup_heap()  # as the service's entry point does once it is up
                runs = [
                    await phase(
                        source,
                        running.address,
                        subscribers=n,
                        channels=min(n, channels),
                        rate=rate,
                        duration_s=duration_s,
                    )
                    for n in (len(SYMBOLS), subscribers)
                ]
                gaps = running.follower.gaps
    base, fan = runs
    p99, p50 = fan["client"]["latency_ms"]["p99"], fan["client"]["latency_ms"]["p50"]
    b99, b50 = base["client"]["latency_ms"]["p99"], base["client"]["latency_ms"]["p50"]
    ratio = fan["conflation_ratio"]
    checks = {
        f"{label}_{k}": ok
        for label, r in zip(("baseline", "fanout"), runs, strict=True)
        for k, ok in r["checks"].items()
    }
    checks["follower_saw_no_gap"] = gaps == 0
    return {
        "benchmark": NAME,
        "headline": (
            f"{subscribers:,} subscribers: trade->update p50 {p50} ms, p99 {p99} ms vs 1 "
            f"subscriber per symbol p50 {b50} ms, p99 {b99} ms ({rate:g} trades/s; every "
            f"trade measured, {ratio:.0%} of live updates conflated)"
        ),
        "target": f"p99 < {TARGET_P99_MS:g} ms with {subscribers:,} subscribers",
        "target_met": p99 is not None and p99 < TARGET_P99_MS,
        "checks": checks,
        "config": {
            "subscribers": subscribers,
            "channels": channels,
            "symbols": list(SYMBOLS),
            "trades_per_s": rate,
            "duration_s": duration_s,
            "window_ms": WINDOW_MS,
            "step_ms": STEP_MS,
            "storage_mode": "plain",
            "cores": len(os.sched_getaffinity(0)),
            "latency_resolution": "1 ms (trade timestamps are whole milliseconds)",
        },
        "p50_ms": p50,
        "p99_ms": p99,
        "conflation_ratio": ratio,
        "baseline_p50_ms": b50,
        "baseline_p99_ms": b99,
        "runs": {"baseline_1_subscriber_per_symbol": base, "fanout": fan},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write ``--out``."""
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=8, help="gRPC channels they share")
    parser.add_argument("--rate", type=float, default=50.0, help="trades/s over both symbols")
    parser.add_argument("--duration-s", type=float, default=20.0, help="measured seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.channels, args.duration_s = 50, 2, 3.0
    result = asyncio.run(
        bench(
            subscribers=args.subscribers,
            channels=args.channels,
            rate=args.rate,
            duration_s=args.duration_s,
        )
    )
    return finish(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
