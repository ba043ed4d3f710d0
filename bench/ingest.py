"""Benchmark: end-to-end ingest rate vs a raw psycopg COPY of the same rows, same run.

The simulator (``clean`` profile, its own process) holds its clock, the processor connects to
its WebSocket feed, then the simulator releases a backlog of several tickers at once and sends
it as fast as the processor reads. The processor (in this process, everything real: batch
writer, dedup, aggregates triggers, transactional event log, NATS relay to JetStream) stores
it. Measured: stored trades/s while the backlog drains (10 % -> 90 % of it, "sustained"), and
from the first frame of the backlog in to its last event published to JetStream ("end to
end"); the simulator's own time making up the backlog's tape before its first frame is
reported apart (``tape_generation_s``), as is how far the relay lags the last commit.

Baseline: the stored rows, read back, COPYed with psycopg into a plain table shaped like
``trades`` (same columns, primary key and index; no triggers, no events).

Correctness: stored trades == frames sent - duplicates sent == trades released, events ==
stored trades, JetStream holds them all.

    python -m bench.ingest [--quick] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import nats
import psycopg

from bench.cpu import cpu_by_component, cpu_used
from bench.report import bench_parser, finish, rounded
from bench.servers import nats_server, postgres_server
from bench.sim_process import SimProcess
from devstack.postgres import temporary_database
from processor.app import GC_THRESHOLDS, RunningProcessor, run_processor
from processor.config import SETTINGS, ProcessorConfig
from proxy.app import run_proxy
from proxy.config import load_config as load_proxy_config
from tradekit.config import Env
from tradekit.entry import freeze_startup_heap
from tradekit.tasks import cancel_and_wait

NAME = "ingest"
TARGET_RATE = 25_000
TARGET_RATIO = 0.5
#: Measurements made; one whose feed was interrupted is repeated (see FeedInterrupted).
ATTEMPTS = 2


class FeedInterrupted(RuntimeError):
    """The WebSocket connection was lost during the measurement. Reconciliation is kept out of
    the way, so the trades the feed missed are never stored and the run cannot finish; the
    measurement is invalid, not the code (the feed's own log line says why it reconnected)."""


TICKERS = ("BTC", "ETH", "SOL", "XRP")


async def sim_stats(base_url: str) -> dict[str, Any]:
    """The simulator's ``GET /stats``."""
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/stats") as resp:
        stats: dict[str, Any] = await resp.json()
        return stats


async def wait_until(predicate: Any, timeout_s: float, what: str, step_s: float = 0.02) -> float:
    """Poll ``predicate()`` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(step_s)
    return time.monotonic()


def processor_env(
    sim: SimProcess, proxy: str, db: str, nats_url: str, writers: int | None = None
) -> dict[str, str]:
    """Processor settings: defaults, the simulator's feed, reconciliation kept out of the way."""
    return {
        "PROCESSOR_PORT": "0",
        "DATABASE_URL": db,
        "STORAGE_MODE": "plain",
        "NATS_URL": nats_url,
        "NATS_STREAM": f"BENCH{time.monotonic_ns()}",
        "PROVIDER_WS_URL": sim.ws_url,
        "PROXY_ADDRESS": proxy,
        "SYMBOLS": ",".join(TICKERS),
        "SETTLE_DELAY": "1h",  # nothing to reconcile during the measurement
        "LOG_LEVEL": "warning",
    } | ({} if writers is None else {"INGEST_WRITERS": str(writers)})


async def connected(processor: RunningProcessor, sim: SimProcess) -> None:
    """Wait until the feed's connection is open on both sides (30 s at most)."""
    deadline = time.monotonic() + 30
    while (
        processor.counters.connections < 1
        or (await sim_stats(sim.base_url))["ws"]["connections_open"] < 1
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("the processor never connected")
        await asyncio.sleep(0.05)


async def delete_stream(nats_url: str, stream: str) -> None:
    """Delete the run's JetStream stream, if it was created."""
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def first_frame_at(processor: RunningProcessor, timeout_s: float) -> float:
    """When the processor received its next frame (started before the backlog's release: the
    simulator may send while the release command's answer is still on its way)."""
    counters = processor.counters
    before = counters.frames_received
    return await wait_until(
        lambda: counters.frames_received > before, timeout_s, "the first frame", 0.002
    )


async def drain(
    processor: RunningProcessor, released: int, timeout_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Times (monotonic) at which 10 %, 90 % and 100 % of ``released`` were committed, and the
    CPU seconds each part of the system used from the 10 % to the 90 % mark."""
    counters = processor.counters
    connections = counters.connections

    def stored(need: int) -> bool:
        if counters.connections != connections:
            raise FeedInterrupted(f"feed reconnected after {counters.trades_ingested} trades")
        return counters.trades_ingested >= need

    marks = {}
    cpu: dict[str, dict[str, float]] = {}
    for share in (0.1, 0.9, 1.0):
        need = int(released * share)
        marks[str(share)] = await wait_until(
            lambda n=need: stored(n), timeout_s, f"{need} stored", 0.005
        )
        cpu[str(share)] = cpu_by_component()
    return marks, cpu_used(cpu["0.1"], cpu["0.9"])


async def raw_copy_rate(db: str) -> tuple[float, int]:
    """Stored rows COPYed into a trigger-free ``trades``-shaped table: trades/s and count."""
    async with await psycopg.AsyncConnection.connect(db) as conn:
        await conn.execute(
            "CREATE TABLE raw_trades (LIKE trades INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING INDEXES)"
        )
        cur = await conn.execute(
            "SELECT symbol, trade_id, ts, price, quantity, source, verified, received_at"
            " FROM trades"
        )
        rows = await cur.fetchall()
        await conn.commit()
        began = time.perf_counter()
        async with conn.cursor() as cur, cur.copy("COPY raw_trades FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        await conn.commit()
        elapsed = time.perf_counter() - began
    return len(rows) / elapsed, len(rows)


async def store_counts(db: str) -> tuple[int, int]:
    """Stored trades and the event log head."""
    async with await psycopg.AsyncConnection.connect(db) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM trades), (SELECT seq FROM event_head)"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def jetstream_messages(nats_url: str, stream: str) -> int:
    """Messages JetStream holds in ``stream``."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


def top_functions(profile: cProfile.Profile, limit: int = 25) -> list[str]:
    """The ``limit`` functions with the most own time."""
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(limit)
    lines = [line.rstrip() for line in text.getvalue().splitlines()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return [line for line in lines[start:] if line]


async def bench(
    *,
    rate: float,
    backlog_ms: int,
    profile: bool,
    pg_url: str,
    nats_url: str,
    timeout_s: float = 300,
    writers: int | None = None,
) -> dict[str, Any]:
    """One measured backlog through the real chain, then the raw COPY baseline; TimeoutError
    when the backlog is not stored and published within ``timeout_s``."""
    sim_args = ["--tickers", ",".join(TICKERS), "--rate", str(rate), "--profile", "clean"]
    with temporary_database(pg_url, "bench_ingest") as db:
        async with SimProcess(sim_args) as sim:
            proxy_cfg = load_proxy_config({"PROXY_PORT": "0", "PROVIDER_REST_URL": sim.base_url})
            async with run_proxy(proxy_cfg) as proxy:
                env = processor_env(sim, proxy, db, nats_url, writers)
                config = ProcessorConfig.from_env(Env(SETTINGS, env))
                try:
                    async with run_processor(config) as processor:
                        # as the service's entry point does once it is up
                        freeze_startup_heap(GC_THRESHOLDS)
                        await connected(processor, sim)
                        profiler = cProfile.Profile() if profile else None
                        if profiler is not None:
                            profiler.enable()
                        began = time.monotonic()
                        first_frame = asyncio.create_task(
                            first_frame_at(processor, timeout_s=timeout_s)
                        )
                        try:
                            released = int((await sim.command(f"jump {backlog_ms}")).split()[1])
                            marks, cpu = await drain(processor, released, timeout_s=timeout_s)
                        finally:
                            await cancel_and_wait(first_frame)
                        frame_in = first_frame.result()
                        if profiler is not None:
                            profiler.disable()
                        counters = processor.counters
                        relayed_at = await wait_until(
                            lambda: counters.events_published >= released,
                            timeout_s,
                            "relay",
                            0.01,
                        )
                        await asyncio.sleep(0.5)  # anything late (duplicates) would show now
                        stats = await sim_stats(sim.base_url)
                        snapshot = counters.snapshot()
                    stored, head = await store_counts(db)
                    in_nats = await jetstream_messages(nats_url, config.nats_stream)
                finally:
                    await delete_stream(nats_url, config.nats_stream)
        copy_rate, copied = await raw_copy_rate(db)
    sustained = 0.8 * released / (marks["0.9"] - marks["0.1"])
    end_to_end = released / (relayed_at - frame_in)
    ratio = sustained / copy_rate
    duplicates = int(stats["ws"]["faults"].get("duplicate", 0))
    frames = int(stats["ws"]["frames_sent"])
    result: dict[str, Any] = {
        "benchmark": NAME,
        "headline": (
            f"ingest {sustained:,.0f} trades/s sustained ({end_to_end:,.0f} end to end, first frame"
            f" in to last event published) vs raw "
            f"COPY {copy_rate:,.0f} trades/s = {ratio:.2f}x"
        ),
        "target": f">= {TARGET_RATE:,} trades/s and >= {TARGET_RATIO} x raw COPY",
        "target_met": min(sustained, end_to_end) >= TARGET_RATE and ratio >= TARGET_RATIO,
        "checks": {
            "stored_equals_frames_minus_duplicates": stored == frames - duplicates,
            "stored_equals_released": stored == released,
            "one_event_per_trade": head == stored,
            "jetstream_holds_every_event": in_nats == head,
        },
        "config": {
            "tickers": list(TICKERS),
            "tape_rate_per_ticker": rate,
            "backlog_ms": backlog_ms,
            "profile": "clean",
            "storage_mode": "plain",
            "postgres": "embedded, fsync/synchronous_commit off",
            "cores": _cores(),
        },
        "released": released,
        "frames_sent": frames,
        "duplicates_sent": duplicates,
        "stored": stored,
        "events": head,
        "jetstream_messages": in_nats,
        "sustained_trades_per_s": rounded(sustained, 0),
        "end_to_end_trades_per_s": rounded(end_to_end, 0),
        "tape_generation_s": rounded(frame_in - began, 2),
        "first_10pct_s": rounded(marks["0.1"] - frame_in, 2),
        "relay_lag_after_last_commit_s": rounded(relayed_at - marks["1.0"], 2),
        "raw_copy_trades_per_s": rounded(copy_rate, 0),
        "raw_copy_rows": copied,
        "ratio_to_raw_copy": rounded(ratio, 3),
        "processor_counters": snapshot,
        # where the sustained interval's CPU went, and how busy the machine's cores were
        "cpu_s_sustained_interval": cpu,
        "cpu_ms_per_1000_trades": {
            name: rounded(1000 * seconds / (0.8 * released) * 1000, 1)
            for name, seconds in cpu.items()
        },
        "cores_busy_share": rounded(
            sum(cpu.values()) / (_cores() * (marks["0.9"] - marks["0.1"])), 2
        ),
    }
    if profiler is not None:
        result["profile_top_tottime"] = top_functions(profiler)
    return result


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write ``--out``."""
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--rate", type=float, default=10_000, help="tape trades/s per ticker")
    parser.add_argument("--backlog-ms", type=int, default=8_000, help="tape released at once")
    parser.add_argument("--profile", action="store_true", help="cProfile the processor side")
    parser.add_argument("--writers", type=int, help="INGEST_WRITERS (default: the setting's)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.backlog_ms = 500, 2_000

    async def run() -> dict[str, Any]:
        with postgres_server() as pg_url, nats_server() as nats_url:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    result = await bench(
                        rate=args.rate,
                        backlog_ms=args.backlog_ms,
                        profile=args.profile,
                        pg_url=pg_url,
                        nats_url=nats_url,
                        # the quick run fails before a test's timeout
                        timeout_s=60 if args.quick else 300,
                        writers=args.writers,
                    )
                except FeedInterrupted as exc:
                    if attempt == ATTEMPTS:
                        raise
                    print(f"ingest: measurement repeated: {exc}", file=sys.stderr)
                    continue
                result["attempts"] = attempt
                return result
        raise AssertionError("unreachable")

    return finish(asyncio.run(run()), args.out)


if __name__ == "__main__":
    sys.exit(main())
