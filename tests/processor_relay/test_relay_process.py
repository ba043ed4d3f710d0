"""The relay in its own process: started by the processor, restarted when it dies, stopped
gracefully; a worker killed at any instant leaves every event in JetStream exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import nats
import pytest

from devstack.nats import EmbeddedNats
from processor.config import SETTINGS, ProcessorConfig
from processor.db import Pool
from processor.head_watch import HeadWatcher
from processor.relay_process import WORKER_MODULE, RelayProcess, worker_environment
from processor.stats import ProcessorCounters
from tests.processor_relay.stream import append_trade_events, stream_sequences
from tradekit.config import Env


def _config(database_url: str, nats_url: str, stream: str) -> ProcessorConfig:
    env = {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "NATS_STREAM": stream,
        "LOG_LEVEL": "warning",
    }
    return ProcessorConfig.from_env(Env(SETTINGS, env))


async def _until(condition: object, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _stream_sequences(nats_url: str, stream: str) -> list[int | None]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        return await stream_sequences(js, stream)
    finally:
        await nc.close()


async def test_a_killed_worker_is_restarted_and_nothing_is_published_twice(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """SIGKILL the worker while events keep arriving: a new worker takes over, the stream
    holds every event once in order, and the counter counts each once."""
    stream = stream_name
    counters = ProcessorCounters()
    total = 0
    async with RelayProcess(
        config=_config(database_url, nats_url, stream), counters=counters, restart_delay_s=0.1
    ) as relay:
        first_pid = relay.pid
        assert first_pid is not None
        for _ in range(20):
            await append_trade_events(pool, 50)
            total += 50
        os.kill(first_pid, signal.SIGKILL)
        for _ in range(20):
            await append_trade_events(pool, 50)
            total += 50
        await _until(lambda: relay.starts == 2 and relay.published_seq == total, "takeover")
        assert relay.pid != first_pid
    assert await _stream_sequences(nats_url, stream) == list(range(1, total + 1))
    assert counters.events_published == total


async def test_a_hung_worker_is_replaced_and_nothing_is_published_twice(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """A worker frozen (SIGSTOP: alive, no progress) while events wait is killed after the stall
    timeout and a new one publishes the rest: every event once, in order."""
    counters = ProcessorCounters()
    async with (
        HeadWatcher(database_url) as watcher,
        RelayProcess(
            config=_config(database_url, nats_url, stream_name),
            counters=counters,
            restart_delay_s=0.1,
            watcher=watcher,
            stall_timeout_s=3.0,
        ) as relay,
    ):
        await append_trade_events(pool, 30)
        await _until(lambda: relay.published_seq == 30, "the first events")
        starts, stalls = relay.starts, relay.stalls
        frozen = relay.pid
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
        await append_trade_events(pool, 30)
        await _until(lambda: relay.published_seq == 60, "the takeover")
        assert (relay.starts, relay.stalls) == (starts + 1, stalls + 1)
        assert relay.pid != frozen
    with pytest.raises(ProcessLookupError):
        os.kill(frozen, 0)
    assert await _stream_sequences(nats_url, stream_name) == list(range(1, 61))
    assert counters.events_published == 60


async def test_an_idle_worker_is_not_taken_for_a_hung_one(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """No event waiting: a worker that publishes nothing for longer than the stall timeout is
    left alone."""
    async with (
        HeadWatcher(database_url) as watcher,
        RelayProcess(
            config=_config(database_url, nats_url, stream_name),
            counters=ProcessorCounters(),
            watcher=watcher,
            stall_timeout_s=1.0,
        ) as relay,
    ):
        await append_trade_events(pool, 5)
        await _until(lambda: relay.published_seq == 5, "the events")
        pid, starts, stalls = relay.pid, relay.starts, relay.stalls
        await asyncio.sleep(3.0)  # three stall timeouts with nothing to publish
        assert (relay.pid, relay.starts, relay.stalls) == (pid, starts, stalls)


async def test_a_graceful_stop_publishes_everything_committed(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """Events committed just before the stop are in JetStream once the relay has stopped, and
    the worker process is gone."""
    stream = stream_name
    counters = ProcessorCounters()
    async with RelayProcess(
        config=_config(database_url, nats_url, stream), counters=counters
    ) as relay:
        pid = relay.pid
        await append_trade_events(pool, 300)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert relay.published_seq == 300
    assert counters.events_published == 300
    assert await _stream_sequences(nats_url, stream) == list(range(1, 301))


async def test_the_worker_stops_when_its_parent_is_gone(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """A worker whose stdin closes (its processor was killed) publishes what is committed and
    exits 0 instead of lingering as a second relay."""
    stream = stream_name
    await append_trade_events(pool, 40)
    env = worker_environment(_config(database_url, nats_url, stream), os.environ)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        WORKER_MODULE,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert ready.startswith(b"ready ")
    proc.stdin.close()
    rest = await asyncio.wait_for(proc.stdout.read(), 30)
    assert await proc.wait() == 0
    assert rest.splitlines()[-1] == b"published 40"
    assert await _stream_sequences(nats_url, stream) == list(range(1, 41))


async def test_a_worker_that_cannot_start_is_tried_again_until_it_does(
    pool: Pool, database_url: str, stream_name: str, tmp_path: Path
) -> None:
    """NATS goes away and the worker dies meanwhile: starting a new one fails (it cannot reach
    NATS within the ready timeout), again and again, until NATS is back; then a worker starts
    and publishes what waited, exactly once (one failed start used to end the supervision
    for good, and nothing reached NATS again until the processor restarted)."""
    nats_dir = tmp_path / "nats"
    first = EmbeddedNats(store_dir=nats_dir).start()
    port = first.port
    second: EmbeddedNats | None = None
    config = _config(database_url, first.url, stream_name)
    try:
        async with RelayProcess(
            config=config, counters=ProcessorCounters(), restart_delay_s=0.1, ready_timeout_s=1.0
        ) as relay:
            await append_trade_events(pool, 10)
            await _until(lambda: relay.published_seq == 10, "the first events published")
            first.stop()
            assert relay.pid is not None
            os.kill(relay.pid, signal.SIGKILL)
            await _until(lambda: relay.starts >= 4, "several failed starts")
            await append_trade_events(pool, 10)
            second = EmbeddedNats(store_dir=nats_dir, port=port).start()
            await _until(lambda: relay.published_seq == 20, "the relay back after NATS")
        assert await _stream_sequences(second.url, stream_name) == list(range(1, 21))
    finally:
        if second is not None:
            second.stop()
