"""The relay in its own process: started by the processor, restarted when it dies, stopped
gracefully; a worker killed at any instant leaves every event in JetStream exactly once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import nats
import psycopg
import pytest
from nats.js.api import StreamConfig

from devstack.nats import EmbeddedNats
from devstack.ports import free_port
from processor.config import SETTINGS, ProcessorConfig
from processor.db import Pool
from processor.events import SEQUENCE_HEADER, STREAM_SUBJECTS
from processor.head_watch import HeadWatcher
from processor.relay_process import WORKER_MODULE, RelayProcess, worker_environment
from processor.relay_worker import RELAY_LOCK_SQL
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
        await _until(lambda: relay.ready, "the worker ready")
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


async def _relay_lock_holders(database_url: str) -> list[int]:
    """The sessions holding the relay lock (an advisory lock; the relay's is the only one)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return [int(pid) for (pid,) in await cur.fetchall()]


async def test_a_worker_that_lost_the_relay_lock_is_replaced_by_one_holding_it(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """The session holding the relay lock is cut (a database restart does that): PostgreSQL
    released the lock, so another processor's relay could take it. The worker notices, stops
    publishing and is replaced by one that takes the lock again; every event once. (It used
    to go on publishing without the lock for as long as it lived.)"""
    counters = ProcessorCounters()
    async with RelayProcess(
        config=_config(database_url, nats_url, stream_name), counters=counters, restart_delay_s=0.1
    ) as relay:
        await append_trade_events(pool, 30)
        await _until(lambda: relay.published_seq == 30, "the first events")
        [holder] = await _relay_lock_holders(database_url)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (holder,))
        await _until(lambda: relay.starts == 2 and relay.ready, "a new worker")
        await append_trade_events(pool, 30)
        await _until(lambda: relay.published_seq == 60, "the rest published")
        holders = await _relay_lock_holders(database_url)
    assert len(holders) == 1
    assert holders != [holder]
    assert await _stream_sequences(nats_url, stream_name) == list(range(1, 61))
    assert counters.events_published == 60


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
        await _until(lambda: relay.ready, "the worker ready")
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


async def test_the_relay_starts_while_nats_is_down_and_catches_up_when_it_is_back(
    pool: Pool, database_url: str, stream_name: str, tmp_path: Path
) -> None:
    """Entering does not wait for NATS: the processor goes on with ingest and reconciliation
    while the worker waits for NATS (not taken for a hung one), and what was committed
    meanwhile is published once NATS is there, exactly once (entering used to wait for the
    first worker to be ready, and to fail the processor's start after the ready timeout)."""
    port = free_port()
    nats_server: EmbeddedNats | None = None
    counters = ProcessorCounters()
    config = _config(database_url, f"nats://127.0.0.1:{port}", stream_name)
    try:
        async with (
            HeadWatcher(database_url) as watcher,
            RelayProcess(
                config=config,
                counters=counters,
                watcher=watcher,
                ready_timeout_s=60.0,
                stall_timeout_s=1.0,
            ) as relay,
        ):
            await append_trade_events(pool, 10)
            await _until(lambda: relay.pid is not None, "the worker started")
            await asyncio.sleep(2.5)  # events wait beyond two stall timeouts
            # waiting for NATS is not a stall: the ready timeout bounds a start
            assert (relay.ready, relay.starts, relay.stalls) == (False, 1, 0)
            assert (relay.published_seq, counters.events_published) == (0, 0)
            nats_server = EmbeddedNats(store_dir=tmp_path / "nats", port=port).start()
            await append_trade_events(pool, 10)
            await _until(lambda: relay.published_seq == 20, "the relay once NATS is up")
            assert relay.ready
        assert await _stream_sequences(nats_server.url, stream_name) == list(range(1, 21))
    finally:
        if nats_server is not None:
            nats_server.stop()
    assert counters.events_published == 20


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


async def _relay_lock(database_url: str) -> list[bool]:
    """Whether each session holding or waiting for an advisory lock in this test's database
    holds it (the relay lock is the only advisory lock taken once the schema is migrated)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT granted FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return [bool(row[0]) for row in await cur.fetchall()]


async def _wait_for_relay_lock(database_url: str, wanted: list[bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while (held := sorted(await _relay_lock(database_url))) != wanted:
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {held}"
        await asyncio.sleep(0.05)


async def _start_worker(config: ProcessorConfig) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        WORKER_MODULE,
        env=worker_environment(config, os.environ),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _ended(proc: asyncio.subprocess.Process) -> int:
    """The worker's exit status; kills it if it lingers past a generous bound."""
    try:
        return await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the worker did not stop") from None


@pytest.mark.parametrize("request_stop", ["stdin closed", "SIGTERM"])
async def test_a_worker_waiting_for_nats_stops_when_asked(
    pool: Pool, database_url: str, stream_name: str, request_stop: str
) -> None:
    """A worker that holds the relay lock and cannot reach NATS stops at once when its stdin
    closes (its processor was killed) or on SIGTERM, releasing the lock (it used to keep trying
    to connect, and holding the lock, forever: every later processor's relay waited for it)."""
    nowhere = f"nats://127.0.0.1:{free_port()}"
    proc = await _start_worker(_config(database_url, nowhere, stream_name))
    await _wait_for_relay_lock(database_url, [True], "the worker to take the relay lock")
    if request_stop == "SIGTERM":
        proc.terminate()
    else:
        assert proc.stdin is not None
        proc.stdin.close()
    assert await _ended(proc) == 0
    assert await _relay_lock(database_url) == []


async def test_a_worker_waiting_for_the_relay_lock_stops_when_its_stdin_closes(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """A worker waiting for the relay lock (another relay holds it) stops when its stdin
    closes instead of waiting on, to take the lock and relay for a processor that is gone."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as holder:
        await holder.execute(RELAY_LOCK_SQL)
        proc = await _start_worker(_config(database_url, nats_url, stream_name))
        await _wait_for_relay_lock(database_url, [False, True], "the worker to wait for the lock")
        assert proc.stdin is not None
        proc.stdin.close()
        assert await _ended(proc) == 0
        assert await _relay_lock(database_url) == [True]


_FAKE_PROCESSOR = """
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-m", sys.argv[1]], stdout=subprocess.DEVNULL)
print(worker.pid, flush=True)
worker.wait()
"""


async def test_a_worker_whose_processor_is_killed_goes_too(
    pool: Pool, database_url: str, stream_name: str
) -> None:
    """SIGKILL a processor whose worker waits for NATS while its stdin stays open (here held by
    the test): the kernel tells the worker its parent died, it stops and releases the relay
    lock (it used to live on, reparented, holding the lock for good)."""
    nowhere = f"nats://127.0.0.1:{free_port()}"
    stdin_read, stdin_write = os.pipe()
    try:
        processor = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _FAKE_PROCESSOR,
            WORKER_MODULE,
            env=worker_environment(_config(database_url, nowhere, stream_name), os.environ),
            stdin=stdin_read,
            stdout=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(stdin_read)
    worker = 0
    try:
        assert processor.stdout is not None
        worker = int(await asyncio.wait_for(processor.stdout.readline(), 30))
        await _wait_for_relay_lock(database_url, [True], "the worker to take the relay lock")
        processor.kill()
        await processor.wait()
        await _wait_for_relay_lock(database_url, [], "the orphaned worker to release the lock")
    finally:
        os.close(stdin_write)  # a lingering worker now sees the end of its stdin
        if worker and _running(worker):
            os.kill(worker, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie its new parent has yet to
    reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_a_stream_the_log_cannot_use_is_retried_with_a_growing_delay_saying_why(
    pool: Pool, database_url: str, nats_url: str, stream_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream holds events 1-6 but this database's log ends at 3 (restored from an older
    backup): every worker refuses it at start. The processor keeps ingesting, the supervisor
    logs the worker's reason (it said only "exited with status 1"), retries with a delay
    that doubles up to its cap (it restarted every second for ever), and relay_ready stays
    false for GetProcessorStats."""
    caplog.set_level(logging.ERROR, logger="processor.relay_process")
    await append_trade_events(pool, 3)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream_name, subjects=[STREAM_SUBJECTS]))
        for seq in range(1, 7):
            await js.publish(
                "trading.trade.BTC",
                b"",
                headers={"Nats-Msg-Id": f"evt-{seq}", SEQUENCE_HEADER: str(seq)},
            )
    finally:
        await nc.close()
    counters = ProcessorCounters()
    async with RelayProcess(
        config=_config(database_url, nats_url, stream_name),
        counters=counters,
        restart_delay_s=0.05,
        max_restart_delay_s=0.2,
    ) as relay:
        await _until(lambda: relay.starts >= 4, "four refused starts")
        ready = (relay.ready, counters.relay_ready)
    failed = [r for r in caplog.records if r.getMessage() == "relay_worker_start_failed"]
    assert ready == (False, False)
    assert len(failed) >= 3
    reasons = [r.fields["error"] for r in failed]  # type: ignore[attr-defined]
    assert all(
        "holds event sequence 6 but this database's event log ends at 3" in reason
        for reason in reasons
    ), reasons
    delays = [r.fields["retry_in_s"] for r in failed]  # type: ignore[attr-defined]
    assert delays[:3] == [0.05, 0.1, 0.2]
