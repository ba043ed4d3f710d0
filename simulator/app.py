"""Wiring: the aiohttp application and `run_simulator`, the async context manager that runs
the whole simulator (usable from tests and from `python -m simulator`).

    async with run_simulator(SimConfig.for_profile("clean", port=0)) as sim:
        sim.base_url, sim.ws_url, sim.truth, sim.stats

Handler tasks are cancelled when their client disconnects (`handler_cancellation=True`), so
`/stats` can count REST requests abandoned by clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from simulator.admin import (
    handle_stats,
    handle_truth_export_get,
    handle_truth_export_post,
    handle_truth_trades,
    handle_truth_vwap,
)
from simulator.clock import Clock, wall_clock_ms
from simulator.config import SimConfig
from simulator.faults import RestFaultPlan
from simulator.hub import Hub
from simulator.logfmt import get_logger, kv
from simulator.replay import ReplaySource, load_export
from simulator.rest import handle_tickers, handle_trades
from simulator.state import STATE, SimState
from simulator.stats import SimStats
from simulator.stream import handle_stream
from simulator.tape import Tape, TradeSource
from simulator.truth import TruthStore, write_jsonl

log = get_logger("app")


async def _release_loop(app: web.Application) -> AsyncIterator[None]:
    """Own the hub's release task for the lifetime of the app."""
    task = asyncio.create_task(app[STATE].hub.run(), name="simulator-release")
    yield
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    if isinstance(results[0], Exception):
        log.error(kv("release_loop_failed", error=repr(results[0])))


async def _close_streams(app: web.Application) -> None:
    app[STATE].hub.close_all()


def build_app(state: SimState) -> web.Application:
    """The aiohttp application serving every endpoint."""
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/stream", handle_stream)
    app.router.add_get("/trades", handle_trades)
    app.router.add_get("/tickers", handle_tickers)
    app.router.add_get("/stats", handle_stats)
    app.router.add_get("/truth/trades", handle_truth_trades)
    app.router.add_get("/truth/vwap", handle_truth_vwap)
    app.router.add_get("/truth/export", handle_truth_export_get)
    app.router.add_post("/truth/export", handle_truth_export_post)
    app.cleanup_ctx.append(_release_loop)
    app.on_shutdown.append(_close_streams)
    return app


def build_source(config: SimConfig, start_ms: int) -> TradeSource:
    """The generated tape, or the replayed recording when `replay_file` is set."""
    if config.replay_file is not None:
        return ReplaySource(load_export(config.replay_file), start_ms)
    return Tape(config.tickers, config.tape, config.seed, start_ms)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A started simulator."""

    config: SimConfig
    host: str
    port: int
    start_ms: int
    truth: TruthStore
    stats: SimStats
    hub: Hub

    @property
    def base_url(self) -> str:
        """`http://host:port` (no trailing slash)."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def ws_url(self) -> str:
        """`ws://host:port/stream`."""
        return f"ws://{_url_host(self.host)}:{self.port}/stream"

    @property
    def tickers(self) -> tuple[str, ...]:
        """Tickers served."""
        return self.truth.tickers

    def export_truth(self, path: Path) -> int:
        """Write the truth so far as JSON lines; returns the number of trades."""
        return self.truth.export_jsonl(path)


@asynccontextmanager
async def run_simulator(
    config: SimConfig, *, clock: Clock = wall_clock_ms
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator until the block exits; then shut down and export the truth."""
    start_ms = clock() if config.start_ms is None else config.start_ms
    source = await asyncio.to_thread(build_source, config, start_ms)
    truth = TruthStore(source.tickers)
    stats = SimStats()
    hub = Hub(
        source,
        truth,
        stats,
        clock,
        tick_ms=config.tick_ms,
        retention_ms=config.retention_s * 1000,
        max_backlog=config.max_backlog,
    )
    if start_ms < clock():
        # The market before now (a restart continuing it): into the truth, which REST serves;
        # no WebSocket client is connected yet, so the feed sends only what happens from now.
        history = await asyncio.to_thread(hub.release)
        log.info(kv("history_generated", start_ms=start_ms, trades=len(history)))
    state = SimState(
        config=config,
        tickers=source.tickers,
        truth=truth,
        hub=hub,
        stats=stats,
        clock=clock,
        rest_plan=RestFaultPlan(config.rest_faults, config.seed),
        start_ms=start_ms,
    )
    runner = web.AppRunner(
        build_app(state),
        handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout_s,
        access_log=None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = int(runner.addresses[0][1])
        sim = RunningSimulator(config, config.host, port, start_ms, truth, stats, hub)
        log.info(
            kv(
                "listening",
                host=config.host,
                port=port,
                base_url=sim.base_url,
                ws_url=sim.ws_url,
                profile=config.profile,
                seed=config.seed,
                tickers=",".join(source.tickers),
                replay=config.replay_file or "-",
            )
        )
        yield sim
    finally:
        try:
            await runner.cleanup()
        finally:
            if config.truth_file is not None:
                count = await asyncio.to_thread(write_jsonl, config.truth_file, truth.snapshot())
                log.info(kv("truth_exported", path=config.truth_file, count=count))
