"""The shared state of a running simulator, stored on the aiohttp app under `STATE`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from simulator.clock import Clock
from simulator.config import SimConfig
from simulator.faults import RestFaultPlan
from simulator.hub import Hub
from simulator.stats import SimStats
from simulator.truth import TruthStore


@dataclass(slots=True)
class SimState:
    """What the handlers share."""

    config: SimConfig
    tickers: tuple[str, ...]
    truth: TruthStore
    hub: Hub
    stats: SimStats
    clock: Clock
    rest_plan: RestFaultPlan
    start_ms: int
    next_connection: int = 0

    def connection_ordinal(self) -> int:
        """Ordinal of a newly accepted WebSocket connection (0, 1, 2, ...)."""
        ordinal = self.next_connection
        self.next_connection += 1
        return ordinal


STATE: web.AppKey[SimState] = web.AppKey("simulator_state", SimState)
