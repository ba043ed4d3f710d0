"""Benchmark: GetVwap requests/s and latency under 50 concurrent clients vs a bare grpc.aio
echo service with the same message sizes, same run.

Data: a few hundred thousand trades COPYed into a plain-mode store (triggers keep the
aggregates), spanning hours. The VWAP service runs in this process (with a stand-in processor
that has no events to stream); the echo server is a ``VwapService`` whose ``GetVwap`` returns a
canned response captured from the real service (same size), also in this process. The load
comes from ``python -m bench.query_load`` in a separate process: 50 asyncio clients, random
windows of 1 min .. 2 h at millisecond resolution (so the closed-window cache rarely helps).

Side by side: the two services are measured in alternating rounds (echo, VWAP, echo, VWAP, ...;
3 rounds of 5 s each by default, the same client seed on both sides of a round), so a change in
the machine's load during the run weighs on both; the share is the VWAP service's requests over
the echo's, the per-round shares show the spread.

Besides rates and latencies the result has, for both sides over the same measured span, the CPU
time per request of the server process, of the load generator and of the PostgreSQL cluster
(when it runs on this machine), and the VWAP service's batch statistics: statements per second
and windows per statement (concurrent cache misses answered by one SQL statement, see
``vwap/batching.py``). ``--batch-*`` override the batching settings.

    python -m bench.queries [--quick] [--rounds 3] [--duration 5] [--batch-lanes N]
        [--batch-wait-ms MS] [--batch-flush-at N]
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import os
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import psycopg
from trading.v1 import processor_pb2, processor_pb2_grpc, vwap_pb2, vwap_pb2_grpc

from bench.dataset import copy_rows, synthetic_rows
from bench.ingest import top_functions
from bench.query_load import random_request
from bench.report import bench_parser, finish, rounded
from bench.servers import fresh_database
from processor.schema import migrate
from tradekit.entry import freeze_startup_heap
from vwap.app import run_vwap
from vwap.batching import WindowBatcher
from vwap.config import VwapConfig

NAME = "queries"
SYMBOLS = ("BTC", "ETH", "SOL")
HOUR_MS = 3_600_000
START_MS = 1_700_000_000_000
TARGET_SHARE = 0.8


class IdleProcessor(processor_pb2_grpc.ProcessorServiceServicer):
    """A ProcessorService whose event stream stays open and empty (the store is static)."""

    async def StreamEvents(
        self, request: processor_pb2.StreamEventsRequest, context: Any
    ) -> AsyncIterator[processor_pb2.StreamEventsResponse]:
        await asyncio.Event().wait()
        yield processor_pb2.StreamEventsResponse()  # pragma: no cover - never reached


class EchoVwap(vwap_pb2_grpc.VwapServiceServicer):
    """GetVwap answering a canned response: the floor of a grpc.aio unary call."""

    def __init__(self, canned: vwap_pb2.GetVwapResponse) -> None:
        self._canned = canned

    async def GetVwap(
        self, request: vwap_pb2.GetVwapRequest, context: Any
    ) -> vwap_pb2.GetVwapResponse:
        return self._canned


@contextlib.asynccontextmanager
async def grpc_server(register: Any) -> AsyncIterator[str]:
    """A grpc.aio server on a free port with ``register(server)`` applied; its address."""
    server = grpc.aio.server()
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc), None when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class CpuSampler:
    """CPU seconds at the measured part's start and end: this process (the servers), the
    PostgreSQL cluster (postmaster and its children, when local) and the batcher's counters."""

    def __init__(self, postmaster: int | None, batcher: WindowBatcher | None = None) -> None:
        self._postmaster = postmaster
        self._batcher = batcher
        self._marks: list[tuple[float, dict[int, float], int, int]] = []

    def _postgres(self) -> dict[int, float]:
        if self._postmaster is None:
            return {}
        pids = [self._postmaster] + [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _parent_pid(int(entry.name)) == self._postmaster
        ]
        return {pid: cpu for pid in pids if (cpu := _proc_cpu_s(pid)) is not None}

    def mark(self) -> None:
        """Record one sample (called on the load generator's phase lines)."""
        batcher = self._batcher
        statements, windows = (0, 0) if batcher is None else (batcher.statements, batcher.windows)
        self._marks.append((time.process_time(), self._postgres(), statements, windows))

    def result(self, requests: int) -> dict[str, Any]:
        """Per-request CPU (µs) of the server process and PostgreSQL, and batch statistics."""
        if len(self._marks) != 2 or requests <= 0:
            return {}
        (cpu0, pg0, st0, win0), (cpu1, pg1, st1, win1) = self._marks
        pg_s = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        out: dict[str, Any] = {
            "server_cpu_us_per_request": rounded((cpu1 - cpu0) / requests * 1e6, 1),
            "postgres_cpu_us_per_request": (
                rounded(pg_s / requests * 1e6, 1) if self._postmaster is not None else None
            ),
        }
        if self._batcher is not None:
            statements, windows = st1 - st0, win1 - win0
            out["batch"] = {
                "statements": statements,
                "windows": windows,
                "windows_per_statement": rounded(windows / statements, 1) if statements else None,
                "statements_per_s": None,
            }
        return out


def postmaster_pid(url: str) -> int | None:
    """The local postmaster's pid (parent of a backend), or None when not readable here."""
    with psycopg.connect(url) as conn:  # read while the backend lives
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return None if row is None else _parent_pid(int(row[0]))


async def run_load(
    address: str,
    *,
    concurrency: int,
    duration: float,
    seed: int,
    span_ms: int,
    sampler: CpuSampler | None = None,
) -> dict[str, Any]:
    """Run ``python -m bench.query_load`` against ``address``; its JSON result (with per-request
    CPU and batch statistics from ``sampler`` when given)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.query_load",
        "--address", address,
        "--concurrency", str(concurrency),
        "--duration", str(duration),
        "--warmup", str(min(2.0, duration / 2)),
        "--symbols", ",".join(SYMBOLS),
        "--start-ms", str(START_MS),
        "--end-ms", str(START_MS + span_ms),
        "--seed", str(seed),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    last = b""
    while line := await proc.stdout.readline():
        if line.startswith(b'{"phase"'):
            if sampler is not None:
                sampler.mark()
        elif line.strip():
            last = line
    if await proc.wait() != 0:
        raise RuntimeError(f"query_load exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(last)
    if result["requests"]:
        result["client_cpu_us_per_request"] = rounded(
            result.pop("client_cpu_s") / result["requests"] * 1e6, 1
        )
    if sampler is not None:
        result.update(sampler.result(result["requests"]))
        if (batch := result.get("batch")) is not None:
            batch["statements_per_s"] = rounded(batch["statements"] / duration, 1)
    return result


def load_store(url: str, *, per_symbol: int, span_ms: int) -> None:
    """Migrate (plain mode), COPY the trades, then VACUUM ANALYZE: the rows are then at rest as
    in a store that has been running (hint bits set, visibility map current, statistics), not
    rows the first reads must still check against the commit log."""
    asyncio.run(migrate(url, "plain"))
    rows = synthetic_rows(
        SYMBOLS, start_ms=START_MS, span_ms=span_ms, per_symbol=per_symbol, seed=5
    )
    with psycopg.connect(url) as conn:
        copy_rows(conn, rows, batch=200_000)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


_PER_REQUEST = (
    "client_cpu_us_per_request",
    "server_cpu_us_per_request",
    "postgres_cpu_us_per_request",
)


def combine_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One side's rounds as one result: requests, errors and seconds summed, the rate over all
    of them, CPU per request weighted by requests, batch counts summed; p50/p99 are the median
    of the rounds' (each round's percentiles are exact, they cannot be merged)."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    out: dict[str, Any] = {
        "requests": requests,
        "errors": sum(r["errors"] for r in rounds),
        "seconds": seconds,
        "requests_per_s": requests / seconds,
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds if r["p50_ms"] is not None),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds if r["p99_ms"] is not None),
    }
    for key in _PER_REQUEST:
        weighted = [(r[key], r["requests"]) for r in rounds if r.get(key) is not None]
        if weighted:
            out[key] = rounded(sum(v * n for v, n in weighted) / sum(n for _, n in weighted), 1)
    batches = [r["batch"] for r in rounds if r.get("batch")]
    if batches:
        statements = sum(b["statements"] for b in batches)
        windows = sum(b["windows"] for b in batches)
        out["batch"] = {
            "statements": statements,
            "windows": windows,
            "windows_per_statement": rounded(windows / statements, 1) if statements else None,
            "statements_per_s": rounded(statements / seconds, 1),
        }
    out["rounds"] = [
        {k: rounded(r[k], 2) for k in ("requests_per_s", "p50_ms", "p99_ms") if r.get(k)}
        for r in rounds
    ]
    return out


async def measure(
    url: str,
    *,
    concurrency: int,
    duration: float,
    rounds: int,
    span_ms: int,
    profile: bool = False,
    batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds of the echo then the VWAP service, each ``duration`` seconds, the same
    client seed for both sides of a round."""
    postmaster = postmaster_pid(url)
    async with grpc_server(
        lambda s: processor_pb2_grpc.add_ProcessorServiceServicer_to_server(  # type: ignore[no-untyped-call]
            IdleProcessor(), s
        )
    ) as processor:
        config = replace(
            VwapConfig(port=0, database_url=url, processor_address=processor, grace_s=0.2),
            **(batch or {}),
        )
        async with run_vwap(config) as vwap, grpc.aio.insecure_channel(vwap.address) as ch:
            freeze_startup_heap()  # as the service's entry point does once it is up
            stub = vwap_pb2_grpc.VwapServiceStub(ch)  # type: ignore[no-untyped-call]
            sample = random_request(random.Random(0), SYMBOLS, START_MS, START_MS + span_ms)
            canned = await stub.GetVwap(sample)
            sizes = {"request_bytes": sample.ByteSize(), "response_bytes": canned.ByteSize()}
            profiler = cProfile.Profile() if profile else None
            echo_rounds: list[dict[str, Any]] = []
            vwap_rounds: list[dict[str, Any]] = []
            async with grpc_server(
                lambda s: vwap_pb2_grpc.add_VwapServiceServicer_to_server(  # type: ignore[no-untyped-call]
                    EchoVwap(canned), s
                )
            ) as echo:
                for seed in range(1, rounds + 1):  # side by side: echo, VWAP, echo, VWAP, ...
                    echo_rounds.append(
                        await run_load(
                            echo,
                            concurrency=concurrency,
                            duration=duration,
                            seed=seed,
                            span_ms=span_ms,
                            sampler=CpuSampler(postmaster),
                        )
                    )
                    if profiler is not None:
                        profiler.enable()
                    vwap_rounds.append(
                        await run_load(
                            vwap.address,
                            concurrency=concurrency,
                            duration=duration,
                            seed=seed,
                            span_ms=span_ms,
                            sampler=CpuSampler(postmaster, vwap.batcher),
                        )
                    )
                    if profiler is not None:
                        profiler.disable()
            echo_result, vwap_result = combine_rounds(echo_rounds), combine_rounds(vwap_rounds)
            if profiler is not None:
                vwap_result["profile_top_tottime"] = top_functions(profiler)
            cache = vwap.service.cache
            cache_info = {k: getattr(cache, k) for k in ("hits", "misses") if hasattr(cache, k)}
            limits = vwap.batcher.limits
            batching = {
                "lanes": limits.lanes,
                "max_windows": limits.max_windows,
                "max_wait_ms": limits.max_wait_s * 1000,
                "flush_at": limits.flush_at,
                "retried_batches": vwap.batcher.retried_batches,
            }
    return {
        "echo": echo_result,
        "vwap": vwap_result,
        "sizes": sizes,
        "cache": cache_info,
        "batching": batching,
    }


def bench(
    *,
    per_symbol: int,
    hours: int,
    concurrency: int,
    duration: float,
    rounds: int,
    profile: bool = False,
    batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the store, then measure both servers."""
    span_ms = hours * HOUR_MS
    with fresh_database(NAME) as url:
        began = time.perf_counter()
        load_store(url, per_symbol=per_symbol, span_ms=span_ms)
        load_s = time.perf_counter() - began
        measured = asyncio.run(
            measure(
                url,
                concurrency=concurrency,
                duration=duration,
                rounds=rounds,
                span_ms=span_ms,
                profile=profile,
                batch=batch,
            )
        )
    echo, vwap = measured["echo"], measured["vwap"]
    share = vwap["requests_per_s"] / echo["requests_per_s"]
    shares = [
        v["requests_per_s"] / e["requests_per_s"]
        for v, e in zip(vwap["rounds"], echo["rounds"], strict=True)
    ]
    batch = vwap.get("batch") or {}
    batch_line = (
        f"; {batch['statements_per_s']:,.0f} statements/s of "
        f"{batch['windows_per_statement']} windows each"
        if batch.get("windows_per_statement")
        else ""
    )
    return {
        "benchmark": NAME,
        "headline": (
            f"GetVwap {vwap['requests_per_s']:,.0f} req/s (p50 {vwap['p50_ms']:.1f} ms, p99 "
            f"{vwap['p99_ms']:.1f} ms) vs echo {echo['requests_per_s']:,.0f} req/s (p50 "
            f"{echo['p50_ms']:.1f} ms, p99 {echo['p99_ms']:.1f} ms) = {share:.0%} over "
            f"{rounds} alternating rounds ({min(shares):.0%}..{max(shares):.0%}){batch_line}"
        ),
        "target": f">= {TARGET_SHARE:.0%} of the echo service's rate",
        "target_met": share >= TARGET_SHARE,
        "checks": {
            "vwap_answered_without_errors": vwap["errors"] == 0 and vwap["requests"] > 0,
            "echo_answered_without_errors": echo["errors"] == 0 and echo["requests"] > 0,
        },
        "config": {
            "symbols": list(SYMBOLS),
            "trades": per_symbol * len(SYMBOLS),
            "span_hours": hours,
            "concurrency": concurrency,
            "rounds": rounds,
            "round_s": duration,
            "windows": "random, 1 min .. 2 h, millisecond resolution",
        },
        "load_s": rounded(load_s, 1),
        "message_sizes": measured["sizes"],
        "vwap": {k: rounded(v, 2) if isinstance(v, float) else v for k, v in vwap.items()},
        "echo": {k: rounded(v, 2) if isinstance(v, float) else v for k, v in echo.items()},
        "vwap_cache": measured["cache"],
        "vwap_batching": measured["batching"],
        "share_of_echo": rounded(share, 3),
        "share_of_echo_by_round": [rounded(x, 3) for x in shares],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write ``--out``."""
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--trades-per-symbol", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="echo/VWAP rounds, alternating")
    parser.add_argument("--profile", action="store_true", help="cProfile the server side")
    defaults = VwapConfig()
    parser.add_argument("--batch-lanes", type=int, default=defaults.batch_lanes)
    parser.add_argument("--batch-max-windows", type=int, default=defaults.batch_max_windows)
    parser.add_argument("--batch-wait-ms", type=int, default=defaults.batch_wait_ms)
    parser.add_argument("--batch-flush-at", type=int, default=defaults.batch_flush_at)
    args = parser.parse_args(argv)
    if args.quick:
        args.trades_per_symbol, args.hours, args.concurrency, args.duration = 2_000, 3, 5, 1.0
        args.rounds = 2
    result = bench(
        per_symbol=args.trades_per_symbol,
        hours=args.hours,
        concurrency=args.concurrency,
        duration=args.duration,
        rounds=args.rounds,
        profile=args.profile,
        batch={
            "batch_lanes": args.batch_lanes,
            "batch_max_windows": args.batch_max_windows,
            "batch_wait_ms": args.batch_wait_ms,
            "batch_flush_at": args.batch_flush_at,
        },
    )
    return finish(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
