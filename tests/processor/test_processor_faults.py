"""The processor under the hostile profile for a full minute, and killed with SIGKILL in the
middle of ingest and of a reconciliation: it still converges exactly to the ground truth,
quarantines malformed frames, and NATS holds no duplicate event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
from grpc_health.v1 import health_pb2

from devstack.nats import EmbeddedNats
from devstack.ports import free_port
from devstack.services import ServiceProcess
from processor.app import run_processor
from tests.outages import wait_for_health
from tests.processor.support import (
    WINDOW_MS,
    assert_nats_holds_each_event_once,
    assert_store_equals_truth,
    delete_stream,
    hostile_provider,
    processor_config,
    processor_env,
    stream_name,
    verified_until,
    wait_verified_past,
)

TRADING_S = 62
SERVING = health_pb2.HealthCheckResponse.SERVING


async def _count(database_url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(sql)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_minute_of_hostile_trading_converges_exactly(
    database_url: str, nats_url: str
) -> None:
    """After 60 s of hostile trading and one reconciliation pass, the store equals the truth."""
    stream = stream_name()
    async with hostile_provider(seed=11) as provider:
        env = processor_env(provider, database_url=database_url, nats_url=nats_url, stream=stream)
        try:
            async with run_processor(processor_config(env)) as processor:
                await asyncio.sleep(1)
                start = min((await verified_until(database_url)).values())
                await asyncio.sleep(TRADING_S)
                end = start + (TRADING_S - 2) * 1000 // WINDOW_MS * WINDOW_MS
                await wait_verified_past(database_url, end, timeout_s=90)
                counters = processor.counters
            stored = await assert_store_equals_truth(provider, database_url, start, end)
            faults = provider.simulator.stats.stream.faults
            quarantined = await _count(database_url, "SELECT count(*) FROM quarantine")
            await assert_nats_holds_each_event_once(nats_url, stream, database_url)
        finally:
            await delete_stream(nats_url, stream)
    assert stored > 1000
    assert counters.windows_verified >= 2 * (end - start) // WINDOW_MS
    assert counters.corrections_inserted > 0
    assert counters.corrections_deleted > 0
    # Every malformed frame the processor received is in quarantine (counted at rejection, and
    # the writer was flushed on the graceful stop). The simulator counts frames it decided to
    # corrupt; a TCP abort it injects can discard the last frames of a batch before they leave.
    assert counters.frames_quarantined == quarantined
    assert faults["malformed"] * 0.9 <= quarantined <= faults["malformed"]


async def _wait_for_trades(database_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await _count(database_url, "SELECT count(*) FROM trades"):
        assert time.monotonic() < deadline, "no trade was ingested"
        await asyncio.sleep(0.1)


async def _wait_for_pending_window(database_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await _count(
            database_url, "SELECT count(*) FROM coverage_windows WHERE state = 'pending'"
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no reconciliation window was in flight")


async def test_sigkill_during_ingest_and_reconciliation_still_converges(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    """SIGKILL mid-ingest and mid-reconciliation, restart: exact store, no duplicate event."""
    stream = stream_name()
    async with hostile_provider(seed=23, rate=30.0) as provider:
        env = processor_env(provider, database_url=database_url, nats_url=nats_url, stream=stream)

        def start(n: int) -> ServiceProcess:
            return ServiceProcess(
                "processor", env=env, log_path=tmp_path / f"processor-{n}.log"
            ).start()

        try:
            first = await asyncio.to_thread(start, 1)
            await asyncio.sleep(4)
            assert await _count(database_url, "SELECT count(*) FROM trades") > 0
            first.kill()  # mid-ingest: the feed writes a batch every few milliseconds
            begin = min((await verified_until(database_url)).values())

            second = await asyncio.to_thread(start, 2)
            await _wait_for_pending_window(database_url, timeout_s=30)
            second.kill()  # a window fetch or apply was in flight
            events_before = await _count(database_url, "SELECT seq FROM event_head")

            third = await asyncio.to_thread(start, 3)
            try:
                await asyncio.sleep(6)
                end = begin + 5 * WINDOW_MS
                await wait_verified_past(database_url, end, timeout_s=60)
                await assert_store_equals_truth(provider, database_url, begin, end)
                head = await assert_nats_holds_each_event_once(nats_url, stream, database_url)
            finally:
                assert await asyncio.to_thread(third.stop) == 0, third.log_tail()
        finally:
            await delete_stream(nats_url, stream)
    assert head > events_before
    # Each start after a crash opens a gap from the newest stored trade; a process killed before
    # its first batch commits leaves that to the next start, whose gap then covers both.
    gaps = await _count(database_url, "SELECT count(*) FROM feed_gaps WHERE reason LIKE 'restart%'")
    assert gaps >= 1


async def test_the_processor_starts_and_ingests_while_nats_is_down(
    database_url: str, tmp_path: Path
) -> None:
    """NATS down at start: the processor starts, serves (health SERVING), ingests and
    reconciles; once NATS is up, JetStream receives every event exactly once (the processor
    used to wait for the relay and exit with TimeoutError after 120 s)."""
    port = free_port()
    stream = stream_name()
    nats_server: EmbeddedNats | None = None
    async with hostile_provider(seed=31) as provider:
        env = processor_env(
            provider,
            database_url=database_url,
            nats_url=f"nats://127.0.0.1:{port}",
            stream=stream,
        )
        try:
            async with run_processor(processor_config(env)) as processor:
                assert await wait_for_health(processor.address, SERVING) == SERVING
                await _wait_for_trades(database_url, timeout_s=30)
                start = min((await verified_until(database_url)).values())
                await wait_verified_past(database_url, start + 2 * WINDOW_MS, timeout_s=60)
                assert processor.counters.events_published == 0
                nats_server = EmbeddedNats(store_dir=tmp_path / "nats", port=port).start()
                deadline = time.monotonic() + 60
                while not processor.counters.events_published:  # the relay made the stream
                    assert time.monotonic() < deadline, "nothing published once NATS was up"
                    await asyncio.sleep(0.1)
                head = await assert_nats_holds_each_event_once(
                    nats_server.url, stream, database_url, timeout_s=60
                )
            assert head > 0
            assert processor.counters.events_published >= head
        finally:
            if nats_server is not None:
                nats_server.stop()
