"""Wire the VWAP service: pool, cache, live hub, event follower and gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from tradekit.entry import StartupError, redacted_url
from tradekit.grpc_server import GrpcServer
from tradekit.health_watch import DatabaseProbe, HealthWatch
from tradekit.logs import event_logger
from vwap.batching import BatchLimits, WindowBatcher
from vwap.cache import VwapCache
from vwap.config import VwapConfig
from vwap.follower import EventFollower
from vwap.live import LiveHub
from vwap.outbox import Outbox
from vwap.service import Limits, VwapService, wall_clock_ms
from vwap.servicer import VwapServicer, registration
from vwap.storage import PLAIN, TIMESCALE, VwapStore, open_pool

log = event_logger("vwap.app")


@dataclass(frozen=True, slots=True)
class RunningVwap:
    """A started VWAP service: its address and parts tests and benchmarks look at."""

    address: str
    service: VwapService
    hub: LiveHub
    follower: EventFollower
    batcher: WindowBatcher
    outbox: Outbox


@asynccontextmanager
async def run_vwap(config: VwapConfig) -> AsyncIterator[RunningVwap]:
    """Start the VWAP service; leaving the block stops it gracefully."""
    async with open_pool(config.database_url) as pool:
        try:
            mode = await VwapStore(pool).storage_mode()
            store = VwapStore(pool, TIMESCALE if mode == "timescale" else PLAIN)
            head, head_published_ms = await store.head()
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable, PoolTimeout) as exc:
            raise StartupError(
                f"cannot read the trade store at {redacted_url(config.database_url)}"
                f" ({str(exc).strip().splitlines()[0]}): check DATABASE_URL, that it is up and"
                " that the processor has migrated it"
            ) from exc
        cache = VwapCache(max_entries=config.cache_size)
        batcher = WindowBatcher(
            store,
            BatchLimits(
                lanes=config.batch_lanes,
                max_windows=config.batch_max_windows,
                max_wait_s=config.batch_wait_ms / 1000,
                flush_at=config.batch_flush_at,
            ),
        )
        service = VwapService(
            store,
            cache,
            Limits(config.max_window_ms, config.max_series_points, config.cache_min_age_ms),
            batcher=batcher,
        )
        hub = LiveHub(
            store, retention_ms=config.revision_horizon_ms, max_trades=config.live_max_trades
        )
        hub.sequence = head
        follower = EventFollower(
            config.processor_address,
            start_after=head,
            start_published_ms=head_published_ms,
            sinks=[service.on_event, hub.apply],
        )
        log.info("following_events", processor=config.processor_address, after_sequence=head)
        async with batcher, asyncio.TaskGroup() as tasks:
            follow_task = tasks.create_task(follower.run(), name="vwap-follower")
            discover_task = tasks.create_task(hub.follow_new_symbols(), name="vwap-discovery")
            close_task = (
                tasks.create_task(
                    hub.close_boundaries_on_time(
                        grace_ms=config.close_grace_ms, period_s=0.5, clock_ms=wall_clock_ms
                    ),
                    name="vwap-boundaries",
                )
                if config.close_on_clock
                else None
            )
            outbox = Outbox(
                turns=config.stream_send_turns,
                stuck_after_s=config.stream_stuck_after_ms / 1000,
                stalled_after_s=config.stream_stalled_after_ms / 1000,
            )
            try:
                async with (
                    GrpcServer(
                        name="vwap",
                        host=config.host,
                        port=config.port,
                        grace_s=config.grace_s,
                        services=[registration(VwapServicer(service, hub, outbox=outbox))],
                        keepalive=config.keepalive,
                    ) as server,
                    HealthWatch(server, DatabaseProbe(config.database_url)),
                ):
                    try:
                        yield RunningVwap(server.address, service, hub, follower, batcher, outbox)
                    finally:
                        hub.close()
            finally:
                await outbox.aclose()
                follow_task.cancel()
                discover_task.cancel()
                if close_task is not None:
                    close_task.cancel()
