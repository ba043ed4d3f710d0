"""The processor end to end, against the real simulator, proxy, PostgreSQL and NATS: the store
converges exactly to the ground truth, events are gap-free and resumable, NATS has no duplicate."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import nats
import psycopg
import pytest
from trading.v1 import processor_pb2, processor_pb2_grpc

from processor.app import RunningProcessor, run_processor
from processor.config import SETTINGS as PROCESSOR_SETTINGS
from processor.config import ProcessorConfig
from proxy.app import run_proxy
from proxy.config import load_config as load_proxy_config
from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig
from simulator.profiles import PROFILES
from tradekit.config import Env

SYMBOLS = ("BTC", "ETH")
WINDOW_MS = 2000


@dataclasses.dataclass
class Stack:
    """The running parts of one scenario."""

    simulator: RunningSimulator
    processor: RunningProcessor
    database_url: str
    nats_url: str
    stream: str


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    """Simulator (hostile WebSocket, fast but failing REST), proxy and processor."""
    stream = f"TEST{time.monotonic_ns()}"
    rest = dataclasses.replace(
        PROFILES["hostile"].rest,
        latency_median_ms=15.0,
        slow_rate=0.05,
        slow_ms=300.0,
        timeout_rate=0.05,
        hang_ms=3000.0,
        retry_after_s=1,
    )
    sim_config = SimConfig.for_profile(
        "hostile",
        port=0,
        tickers=SYMBOLS,
        seed=7,
        rest_lag_ms=500,
        rest_faults=rest,
        tape=dataclasses.replace(SimConfig().tape, rate=15.0),
    )
    async with run_simulator(sim_config) as sim:
        proxy_config = load_proxy_config(
            {
                "PROXY_PORT": "0",
                "PROVIDER_REST_URL": sim.base_url,
                "PROXY_ATTEMPT_TIMEOUT_FLOOR": "500ms",
                "PROXY_BACKOFF_INITIAL": "20ms",
                "PROXY_BACKOFF_MAX": "500ms",
                "PROXY_RATE_LIMIT": "0",
            }
        )
        async with run_proxy(proxy_config) as proxy_address:
            config = ProcessorConfig.from_env(
                Env(
                    PROCESSOR_SETTINGS,
                    {
                        "PROCESSOR_PORT": "0",
                        "DATABASE_URL": database_url,
                        "STORAGE_MODE": "plain",
                        "NATS_URL": nats_url,
                        "NATS_STREAM": stream,
                        "PROVIDER_WS_URL": f"ws://127.0.0.1:{sim.port}/stream",
                        "PROXY_ADDRESS": proxy_address,
                        "SYMBOLS": ",".join(SYMBOLS),
                        "RECONCILE_INTERVAL": "300ms",
                        "RECONCILE_WINDOW": f"{WINDOW_MS}ms",
                        "SETTLE_DELAY": "1500ms",
                        "FEED_STALE_TIMEOUT": "2s",
                        "FEED_BACKOFF_MAX": "200ms",
                    },
                )
            )
            try:
                async with run_processor(config) as processor:
                    yield Stack(sim, processor, database_url, nats_url, stream)
            finally:
                nc = await nats.connect(nats_url)
                await nc.jetstream().delete_stream(stream)
                await nc.close()


def _ms(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


async def _verified_until(database_url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT symbol, verified_until FROM symbols")
        return {s: _ms(v) for s, v in await cur.fetchall()}


async def _wait_verified_past(
    database_url: str, target_ms: int, timeout_s: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        verified = await _verified_until(database_url)
        if len(verified) == len(SYMBOLS) and min(verified.values()) >= target_ms:
            return verified
        await asyncio.sleep(0.3)
    raise AssertionError(f"not verified past {target_ms} in time: {verified}")


async def _stored(database_url: str, symbol: str, start_ms: int, end_ms: int) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT trade_id, ts, price, quantity, verified FROM trades"
            " WHERE symbol = %s AND ts >= to_timestamp(%s / 1000.0)"
            " AND ts < to_timestamp(%s / 1000.0) ORDER BY ts, trade_id",
            (symbol, Decimal(start_ms), Decimal(end_ms)),
        )
        return list(await cur.fetchall())


async def test_store_converges_exactly_to_the_ground_truth(stack: Stack) -> None:
    """After the settle delay and reconciliation, verified windows equal the truth exactly."""
    await asyncio.sleep(8)
    first = min((await _verified_until(stack.database_url)).values())
    target = first + 3 * WINDOW_MS
    await _wait_verified_past(stack.database_url, target, timeout_s=60)
    for symbol in SYMBOLS:
        truth = stack.simulator.truth.trades(symbol, first, target)
        stored = await _stored(stack.database_url, symbol, first, target)
        assert [(r[0], _ms(r[1]), r[2], r[3]) for r in stored] == [
            (t.trade_id, t.ts, t.price, t.quantity) for t in truth
        ]
        assert all(r[4] for r in stored)
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM quarantine")
        row = await cur.fetchone()
    assert row is not None
    assert row[0] > 0
    assert stack.processor.counters.frames_quarantined == row[0]


async def _collect(stub: processor_pb2_grpc.ProcessorServiceStub, from_seq: int, n: int) -> list:
    events = []
    call = stub.StreamEvents(processor_pb2.StreamEventsRequest(from_sequence=from_seq))
    async for response in call:
        events.append(response.event)
        if len(events) == n:
            call.cancel()
            break
    return events


async def test_stream_events_resumes_without_gap_or_duplicate(stack: Stack) -> None:
    """A client that disconnects and resumes from its last sequence gets every event once."""
    await asyncio.sleep(3)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        first = await _collect(stub, 1, 40)
        second = await _collect(stub, first[-1].sequence + 1, 200)
    sequences = [e.sequence for e in first + second]
    assert sequences == list(range(1, len(sequences) + 1))
    assert all(e.WhichOneof("payload") for e in first + second)


async def test_nats_holds_every_event_once(stack: Stack) -> None:
    """JetStream receives each logged event exactly once, in sequence order."""
    await asyncio.sleep(4)
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 20
        async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
            cur = await conn.execute("SELECT seq FROM event_head")
            row = await cur.fetchone()
        assert row is not None
        head = int(row[0])
        while time.monotonic() < deadline:
            info = await js.stream_info(stack.stream)
            if info.state.messages >= head:
                break
            await asyncio.sleep(0.2)
        seen = []
        for stream_seq in range(1, head + 1):
            msg = await js.get_msg(stack.stream, stream_seq)
            seen.append(int((msg.headers or {})["Trading-Sequence"]))
        assert seen == list(range(1, head + 1))
    finally:
        await nc.close()
