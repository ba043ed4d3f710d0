"""Shared setup of the processor scenarios: simulator, proxy, processor configuration, and
exact comparisons with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import nats
import psycopg
from nats.js.errors import NotFoundError

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from processor.config import ProcessorConfig
from proxy.app import run_proxy
from proxy.config import load_config as load_proxy_config
from simulator.app import RunningSimulator, run_simulator
from simulator.clock import Clock, wall_clock_ms
from simulator.config import SimConfig
from simulator.profiles import PROFILES
from tradekit.config import Env

SYMBOLS = ("BTC", "ETH")
WINDOW_MS = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(ts: datetime) -> int:
    """Milliseconds since the epoch of a timestamptz value."""
    return (ts - EPOCH) // timedelta(milliseconds=1)


@dataclasses.dataclass
class Provider:
    """A running simulator and the proxy in front of its REST API."""

    simulator: RunningSimulator
    proxy_address: str


@contextlib.asynccontextmanager
async def hostile_provider(
    *, seed: int, rate: float = 15.0, clock: Clock = wall_clock_ms
) -> AsyncIterator[Provider]:
    """The simulator with the hostile WebSocket profile and fast but failing REST, plus proxy;
    ``clock`` is the provider's (its trade times, what REST has published)."""
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
        seed=seed,
        rest_lag_ms=500,
        rest_faults=rest,
        tape=dataclasses.replace(SimConfig().tape, rate=rate),
    )
    async with run_simulator(sim_config, clock=clock) as sim:
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
            yield Provider(sim, proxy_address)


def processor_env(
    provider: Provider, *, database_url: str, nats_url: str, stream: str
) -> dict[str, str]:
    """Environment of a processor wired to ``provider``, reconciling in 2 s windows."""
    return {
        "PROCESSOR_PORT": "0",
        "DATABASE_URL": database_url,
        "STORAGE_MODE": "plain",
        "NATS_URL": nats_url,
        "NATS_STREAM": stream,
        "PROVIDER_WS_URL": f"ws://127.0.0.1:{provider.simulator.port}/stream",
        "PROXY_ADDRESS": provider.proxy_address,
        "SYMBOLS": ",".join(SYMBOLS),
        "RECONCILE_INTERVAL": "300ms",
        "RECONCILE_WINDOW": f"{WINDOW_MS}ms",
        "SETTLE_DELAY": "1500ms",
        "FEED_STALE_TIMEOUT": "2s",
        "FEED_BACKOFF_MAX": "200ms",
    }


def processor_config(env: Mapping[str, str]) -> ProcessorConfig:
    """The configuration a processor started with ``env`` reads."""
    return ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, env))


def stream_name() -> str:
    """A JetStream stream name no other test uses."""
    return f"TEST{time.monotonic_ns()}"


async def delete_stream(nats_url: str, stream: str) -> None:
    """Remove a test's stream (the session's NATS server is shared); none if the processor
    stopped before its relay was ready (and made the stream)."""
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def verified_until(database_url: str) -> dict[str, int]:
    """Each symbol's reconciliation watermark."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT symbol, verified_until FROM symbols")
        return {s: ms(v) for s, v in await cur.fetchall()}


async def wait_verified_past(database_url: str, target_ms: int, timeout_s: float) -> None:
    """Wait until every symbol is verified up to ``target_ms``."""
    deadline = time.monotonic() + timeout_s
    verified: dict[str, int] = {}
    while time.monotonic() < deadline:
        verified = await verified_until(database_url)
        if len(verified) == len(SYMBOLS) and min(verified.values()) >= target_ms:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"not verified past {target_ms} in {timeout_s} s: {verified}")


async def stored_trades(
    database_url: str, symbol: str, start_ms: int, end_ms: int
) -> list[tuple[object, ...]]:
    """(trade_id, ts ms, price, quantity, verified) of stored trades in [start, end)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT trade_id, ts, price, quantity, verified FROM trades"
            " WHERE symbol = %s AND ts >= %s AND ts < %s ORDER BY ts, trade_id",
            (
                symbol,
                EPOCH + timedelta(milliseconds=start_ms),
                EPOCH + timedelta(milliseconds=end_ms),
            ),
        )
        return [(r[0], ms(r[1]), r[2], r[3], r[4]) for r in await cur.fetchall()]


async def assert_store_equals_truth(
    provider: Provider, database_url: str, start_ms: int, end_ms: int
) -> int:
    """Stored trades in [start, end) equal the truth exactly, all verified; their count."""
    total = 0
    for symbol in SYMBOLS:
        truth = provider.simulator.truth.trades(symbol, start_ms, end_ms)
        stored = await stored_trades(database_url, symbol, start_ms, end_ms)
        assert [r[:4] for r in stored] == [(t.trade_id, t.ts, t.price, t.quantity) for t in truth]
        assert all(r[4] for r in stored)
        total += len(stored)
    return total


async def assert_nats_holds_each_event_once(
    nats_url: str, stream: str, database_url: str, timeout_s: float = 30
) -> int:
    """JetStream holds every logged event exactly once, in sequence order; the count."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT seq FROM event_head")
        row = await cur.fetchone()
    assert row is not None
    head = int(row[0])
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = await js.stream_info(stream)
            if info.state.messages >= head:
                break
            await asyncio.sleep(0.2)
        info = await js.stream_info(stream)
        seen = []
        for stream_seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, stream_seq)
            seen.append(int((msg.headers or {})["Trading-Sequence"]))
    finally:
        await nc.close()
    # events logged after ``head`` was read may be in the stream too: each of those once also
    assert sorted(seen) == list(range(1, len(seen) + 1))
    assert len(seen) >= head
    return head
