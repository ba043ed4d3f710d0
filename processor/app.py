"""Wiring of the processor: storage, event log watcher, NATS relay (in its own process), ingest,
reconciliation and the gRPC server, each an async context manager closed in reverse order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import psycopg
from trading.v1 import processor_pb2, processor_pb2_grpc

from processor.config import ProcessorConfig
from processor.db import Pool, open_pool
from processor.event_retention import EventRetention
from processor.head_watch import HeadWatcher
from processor.ingest.config import IngestConfig
from processor.ingest.feed import wall_clock_ms
from processor.ingest.service import IngestService
from processor.ingest.storage import recent_feed_lags
from processor.provider_clock import SAMPLES, ProviderClock
from processor.reconcile.config import ReconcileConfig
from processor.reconcile.scheduler import Reconciler
from processor.relay_process import RelayProcess
from processor.schema import MATERIALISED_LAG_MS, MigrationError, StorageMode, migrate
from processor.servicer import ProcessorServicer
from processor.stats import ProcessorCounters
from tradekit.entry import StartupError, redacted_url
from tradekit.grpc_server import GrpcServer, ServiceRegistration
from tradekit.health_watch import DatabaseProbe, HealthWatch
from tradekit.logs import event_logger

log = event_logger("processor")

#: The garbage collector's thresholds once the processor is up (``python -m processor`` sets
#: them). Ingesting a backlog allocates a few tracked objects per trade (record, trade) that
#: live until their batch commits: with the default (700, 10, 10) they were promoted to the
#: oldest generation and a full collection walked tens of thousands of them every second or so
#: (13 of 30-50 ms each in a 10 s backlog, plus ~1,700 young and middle ones: ~0.8 s of the
#: feed's 10). Young collections every 50,000 allocations let records die young (~15 pauses of
#: ~11 ms in that backlog, no full collection); ~10 % less processor CPU per trade in the ingest
#: benchmark, side by side.
GC_THRESHOLDS = (50_000, 20, 100)

SERVICE_NAME = processor_pb2.DESCRIPTOR.services_by_name["ProcessorService"].full_name


@dataclass(frozen=True, slots=True)
class RunningProcessor:
    """Handles of a running processor, for the entry point and tests."""

    address: str
    pool: Pool
    counters: ProcessorCounters
    mode: StorageMode
    server: GrpcServer
    retention: EventRetention


def ingest_config(config: ProcessorConfig, *, timescale: bool = False) -> IngestConfig:
    """The ingest settings from the processor's configuration (and the storage mode)."""
    return IngestConfig(
        materialised_lag_ms=MATERIALISED_LAG_MS if timescale else None,
        batch_size=config.ingest_batch_size,
        flush_interval_ms=config.ingest_flush_interval_ms,
        queue_size=config.ingest_queue_size,
        writers=config.ingest_writers,
        stale_timeout_ms=config.feed_stale_timeout_ms,
        backoff_max_ms=config.feed_backoff_max_ms,
    )


def reconcile_config(config: ProcessorConfig) -> ReconcileConfig:
    """The reconciliation settings from the processor's configuration."""
    return ReconcileConfig(
        window_ms=config.reconcile_window_ms,
        settle_ms=config.settle_delay_ms,
        interval_ms=config.reconcile_interval_ms,
        concurrency=config.reconcile_concurrency,
    )


@contextlib.asynccontextmanager
async def run_processor(config: ProcessorConfig) -> AsyncIterator[RunningProcessor]:
    """Run the whole processor until the block exits."""
    try:
        mode = await migrate(config.database_url, config.storage_mode)
    except psycopg.OperationalError as exc:
        raise StartupError(
            f"cannot reach the database at {redacted_url(config.database_url)}"
            f" ({str(exc).strip().splitlines()[0]}): check DATABASE_URL and that it is up"
        ) from exc
    except MigrationError as exc:  # a storage mode the database cannot take, a bad migration
        raise StartupError(str(exc)) from exc
    log.info("storage_ready", mode=mode.value)
    counters = ProcessorCounters()
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(open_pool(config.database_url, max_size=12))
        watcher = await stack.enter_async_context(HeadWatcher(config.database_url))
        await stack.enter_async_context(
            RelayProcess(config=config, counters=counters, watcher=watcher)
        )
        retention = await stack.enter_async_context(
            EventRetention(pool=pool, retention_ms=config.event_log_retention_ms, counters=counters)
        )
        # What has settled is judged on the provider's clock as the feed shows it.
        provider_clock = ProviderClock(wall_clock_ms)
        async with pool.connection() as conn:
            provider_clock.seed(await recent_feed_lags(conn, config.symbols, SAMPLES))
        reconciler = await stack.enter_async_context(
            Reconciler(
                pool=pool,
                proxy_address=config.proxy_address,
                symbols=config.symbols,
                counters=counters,
                config=reconcile_config(config),
                storage_mode_timescale=mode is StorageMode.TIMESCALE,
                clock=provider_clock.now_ms,
            )
        )
        await stack.enter_async_context(
            IngestService(
                pool=pool,
                ws_url=config.provider_ws_url,
                symbols=config.symbols,
                counters=counters,
                config=ingest_config(config, timescale=mode is StorageMode.TIMESCALE),
                provider_clock=provider_clock,
            )
        )
        servicer: ProcessorServicer | None = None

        def register(server: grpc.aio.Server) -> None:
            processor_pb2_grpc.add_ProcessorServiceServicer_to_server(  # type: ignore[no-untyped-call]
                servicer, server
            )

        server = GrpcServer(
            name="processor",
            host=config.host,
            port=config.port,
            grace_s=config.grace_ms / 1000,
            services=[ServiceRegistration(SERVICE_NAME, register)],
            keepalive=config.keepalive,
        )
        servicer = ProcessorServicer(
            pool=pool,
            watcher=watcher,
            counters=counters,
            stopping=server.stopping,
            reconciler=reconciler,
        )
        await stack.enter_async_context(server)
        await stack.enter_async_context(HealthWatch(server, DatabaseProbe(config.database_url)))
        yield RunningProcessor(server.address, pool, counters, mode, server, retention)
