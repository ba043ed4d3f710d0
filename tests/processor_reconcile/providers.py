"""A real simulator with released history and a real proxy, in process, for end-to-end tests.

The simulator's clock runs ``history_ms`` ahead of the wall clock so that seconds of trades
exist at once; the reconciler under test is given the same clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from proxy.app import run_proxy
from proxy.config import load_config
from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig
from simulator.profiles import RestFaultRates, get_profile
from simulator.tape import TapeParams
from tests.provider_support import FAST_PROXY_ENV, SkipClock
from tradekit.domain import Trade

#: Hostile REST faults, with latencies in milliseconds instead of seconds.
FAST_HOSTILE_REST = dataclasses.replace(
    get_profile("hostile").rest,
    latency_median_ms=3.0,
    latency_sigma=0.5,
    slow_ms=60.0,
    hang_ms=3000.0,
    retry_after_s=0,
)


@dataclass(frozen=True, slots=True)
class Provider:
    """A running simulator and the address of a proxy in front of it."""

    sim: RunningSimulator
    proxy_address: str
    clock: SkipClock

    def truth(self, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
        """The true trades of ``[start_ms, end_ms)``."""
        return [
            Trade(t.ticker, t.trade_id, t.ts, t.price, t.quantity)
            for t in self.sim.truth.trades(symbol, start_ms, end_ms)
        ]


@asynccontextmanager
async def hostile_provider(
    *,
    history_ms: int = 20_000,
    seed: int = 7,
    tape: TapeParams | None = None,
    rest: RestFaultRates = FAST_HOSTILE_REST,
) -> AsyncIterator[Provider]:
    """Simulator (hostile WebSocket; REST ``rest``, by default hostile with fast latencies;
    200 ms REST lag) behind a real proxy."""
    clock = SkipClock()
    config = SimConfig.for_profile(
        "hostile",
        port=0,
        seed=seed,
        tickers=("BTC",),
        tape=tape or TapeParams(rate=30.0, cluster_rate=0.2),
        rest_faults=rest,
        rest_lag_ms=200,
        shutdown_timeout_s=0.1,
    )
    async with run_simulator(config, clock=clock) as sim:
        clock.ahead_ms = history_ms
        sim.hub.release()
        proxy_config = load_config(
            {
                **FAST_PROXY_ENV,
                "PROXY_ATTEMPT_TIMEOUT_CEILING": "400ms",
                "PROVIDER_REST_URL": sim.base_url,
            }
        )
        async with run_proxy(proxy_config) as address:
            yield Provider(sim, address, clock)
