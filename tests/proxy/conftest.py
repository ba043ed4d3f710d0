"""Fixtures for the proxy's tests: a real simulator with history, a real proxy, a channel.

The simulator's clock can jump ahead (``SkipClock``) so that seconds of trade history exist
as soon as a test starts; REST lag is zero so that history is visible at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import proxy_pb2, proxy_pb2_grpc

from proxy.app import run_proxy
from proxy.config import ProxyConfig, load_config
from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig
from simulator.profiles import get_profile
from simulator.tape import TapeParams
from tests.provider_support import FAST_PROXY_ENV, SkipClock
from tradekit.domain import Trade
from tradekit.money import parse_positive
from tradekit.wire import timestamp_from_ms

#: A dense tape: ~60 trades/s with many same-millisecond clusters.
DENSE_TAPE = TapeParams(rate=60.0, cluster_rate=0.3, cluster_max=8, string_number_rate=0.2)


@dataclass(frozen=True, slots=True)
class Sim:
    """A running simulator whose first ``history_ms`` of trades are already released."""

    running: RunningSimulator
    history_ms: int

    @property
    def start_ms(self) -> int:
        """Time of the simulator's start: the tape begins here."""
        return self.running.start_ms

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return self.running.base_url

    def truth(self, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
        """The true trades of a window, as domain trades."""
        return [
            Trade(t.ticker, t.trade_id, t.ts, t.price, t.quantity)
            for t in self.running.truth.trades(symbol, start_ms, end_ms)
        ]

    @property
    def rest_in_flight(self) -> int:
        """REST requests the simulator is handling right now."""
        return self.running.stats.rest.in_flight

    @property
    def rest_cancelled(self) -> int:
        """REST requests the simulator saw cancelled by the client."""
        return self.running.stats.rest.cancelled


def rest_faults(profile: str, **changes: Any) -> Any:
    """The REST fault rates of ``profile`` with fast latencies, then ``changes``."""
    fast = {
        "latency_median_ms": 3.0,
        "latency_sigma": 0.5,
        "slow_ms": 80.0,
        "hang_ms": 5000.0,
        "retry_after_s": 0,
    }
    return dataclasses.replace(get_profile(profile).rest, **(fast | changes))


@asynccontextmanager
async def start_sim(
    profile: str = "clean",
    *,
    seed: int = 1,
    history_ms: int = 20_000,
    tape: TapeParams = DENSE_TAPE,
    replay_file: Path | None = None,
    **rest_changes: Any,
) -> AsyncIterator[Sim]:
    """A simulator on a free port with ``history_ms`` of trades visible on REST."""
    clock = SkipClock()
    config = SimConfig.for_profile(
        profile,
        port=0,
        seed=seed,
        tickers=("BTC", "ETH"),
        tape=tape,
        rest_faults=rest_faults(profile, **rest_changes),
        rest_lag_ms=0,
        replay_file=replay_file,
        shutdown_timeout_s=0.1,
    )
    async with run_simulator(config, clock=clock) as running:
        clock.ahead_ms = history_ms
        running.hub.release()
        yield Sim(running, history_ms)


def proxy_config(provider_url: str, **env: str) -> ProxyConfig:
    """Fast test settings pointing at ``provider_url``, with ``env`` overrides."""
    return load_config({**FAST_PROXY_ENV, "PROVIDER_REST_URL": provider_url, **env})


@asynccontextmanager
async def start_proxy(
    provider_url: str, **env: str
) -> AsyncIterator[proxy_pb2_grpc.ProxyServiceStub]:
    """A proxy in process and a stub on a channel to it."""
    async with (
        run_proxy(proxy_config(provider_url, **env)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield proxy_pb2_grpc.ProxyServiceStub(channel)


def fetch_request(symbol: str, start_ms: int, end_ms: int) -> proxy_pb2.FetchTradesRequest:
    """A FetchTrades request for ``[start_ms, end_ms)``."""
    return proxy_pb2.FetchTradesRequest(
        symbol=symbol, start_time=timestamp_from_ms(start_ms), end_time=timestamp_from_ms(end_ms)
    )


def ms_of(ts: Timestamp) -> int:
    """Milliseconds of a protobuf timestamp."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


@dataclass(frozen=True, slots=True)
class Fetched:
    """Everything one FetchTrades stream delivered."""

    pages: list[proxy_pb2.TradePage]
    complete: proxy_pb2.WindowComplete

    @property
    def trades(self) -> list[Trade]:
        """All trades of all pages, in stream order, as domain trades (exact decimals)."""
        return [
            Trade(
                t.symbol,
                t.trade_id,
                ms_of(t.time),
                parse_positive(t.price, field="price"),
                parse_positive(t.quantity, field="quantity"),
            )
            for page in self.pages
            for t in page.trades
        ]


async def fetch(
    stub: proxy_pb2_grpc.ProxyServiceStub, symbol: str, start_ms: int, end_ms: int, **kw: Any
) -> Fetched:
    """Run FetchTrades to the end; the last message must be the completion."""
    pages: list[proxy_pb2.TradePage] = []
    complete = None
    async for message in stub.FetchTrades(fetch_request(symbol, start_ms, end_ms), **kw):
        assert complete is None, "a message followed the completion"
        if message.HasField("page"):
            pages.append(message.page)
        else:
            complete = message.complete
    assert complete is not None, "the stream ended without a completion"
    return Fetched(pages, complete)


def assert_same_trades(got: Iterable[Trade], want: Iterable[Trade]) -> None:
    """Equal ids, times and exact values, in the provider's order."""
    got, want = list(got), list(want)
    assert [t.trade_id for t in got] == [t.trade_id for t in want]
    for mine, truth in zip(got, want, strict=True):
        assert mine.same_values(truth), (mine, truth)


def write_replay(path: Path, rows: Iterable[tuple[int, int, str, str]]) -> Path:
    """A truth export of BTC trades (ts, tradeId, price, quantity) for the simulator to replay."""
    lines = [
        json.dumps({"ticker": "BTC", "ts": ts, "tradeId": tid, "price": p, "quantity": q})
        for ts, tid, p, q in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Harness:
    """The helpers above, for tests (test modules cannot import conftest in importlib mode)."""

    sim = staticmethod(start_sim)
    sim_rest_faults = staticmethod(rest_faults)
    proxy = staticmethod(start_proxy)
    proxy_config = staticmethod(proxy_config)
    fetch = staticmethod(fetch)
    fetch_request = staticmethod(fetch_request)
    assert_same_trades = staticmethod(assert_same_trades)
    write_replay = staticmethod(write_replay)
    ms_of = staticmethod(ms_of)


@pytest.fixture
def harness() -> type[Harness]:
    """Start simulators and proxies, fetch windows, compare with the truth."""
    return Harness
