"""The NATS relay's own process: ``python -m processor.relay_worker``, started and supervised by
the processor (:class:`processor.relay_process.RelayProcess`), never by hand.

Publishing every event costs CPU (about a fifth of ingesting it, reading the log back
included); in its own process the relay runs on another core and a slow NATS never takes time
from the feed. Settings come from the
environment (``DATABASE_URL``, ``NATS_URL``, ``NATS_STREAM``, ``NATS_MAX_AGE``, ``LOG_LEVEL``,
as the processor's). It talks to its parent in lines on stdout: ``ready <position>`` once
recovered, then ``published <position>`` whenever it advanced (at most every
``REPORT_INTERVAL_S``). It stops gracefully (publishing what is committed, within a bound) on
SIGTERM or when its stdin closes, so it never outlives a processor that was killed.

Only one relay publishes an event log at a time: it holds a session advisory lock for its
lifetime (released by PostgreSQL when its connection dies), so a restarted processor's relay
waits for a previous one that is still draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading

import psycopg

from processor.config import SETTINGS, ProcessorConfig
from processor.db import open_pool
from processor.head_watch import HeadWatcher
from processor.relay import NatsRelay
from processor.stats import ProcessorCounters
from tradekit.config import ConfigError, Env
from tradekit.logs import configure_logging, event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("processor.relay_worker")

REPORT_INTERVAL_S = 0.05
#: Longest graceful stop (the relay's drain is bounded by 5 s, closing NATS by 5 s more).
STOP_BOUND_S = 15.0
STOP_HUNG_STATUS = 3
RELAY_LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('event-relay', 0))"


def _exit_if_stop_hangs() -> None:
    """Exit hard if the graceful stop takes longer than ``STOP_BOUND_S`` (a thread, so even a
    stuck event loop cannot keep an orphaned worker alive). Nothing is lost: the next relay
    recovers what this one published without recording it."""
    timer = threading.Timer(STOP_BOUND_S, os._exit, args=(STOP_HUNG_STATUS,))
    timer.daemon = True
    timer.start()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _stop_requested() -> None:
    """Return on SIGTERM/SIGINT or when stdin reaches end of file (the parent is gone)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def parent_gone() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watch = asyncio.create_task(parent_gone(), name="parent-watch")
    try:
        await stop.wait()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def _stopped_or_failed(relay: NatsRelay) -> bool:
    """Wait for a stop request (True) or the relay's failure (logged; False unless a stop was
    requested at the same time; leaving the relay's block raises it)."""
    stop = asyncio.create_task(_stop_requested(), name="relay-stop")
    failure = asyncio.create_task(relay.failure(), name="relay-failure")
    try:
        done, _ = await asyncio.wait({stop, failure}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stop, failure):
            if not task.done():
                await cancel_and_wait(task)
    if failure in done:
        log.error("relay_failed", error=repr(failure.exception()))
    return stop in done


async def _report(relay: NatsRelay) -> None:
    reported = -1
    while True:
        if relay.published_seq != reported:
            reported = relay.published_seq
            _say(f"published {reported}")
        await asyncio.sleep(REPORT_INTERVAL_S)


async def run(config: ProcessorConfig) -> None:
    """Hold the relay lock, relay until asked to stop, report progress to the parent.

    The reporter keeps running while the relay drains on the way out, so the parent learns the
    final position as soon as it is published, even if closing the connections is slow."""
    counters = ProcessorCounters()
    reporter: asyncio.Task[None] | None = None
    async with await psycopg.AsyncConnection.connect(
        config.database_url, autocommit=True
    ) as lock_conn:
        await lock_conn.execute(RELAY_LOCK_SQL)
        async with (
            open_pool(config.database_url, min_size=1, max_size=2) as pool,
            HeadWatcher(config.database_url) as watcher,
        ):
            relay = NatsRelay(
                pool=pool,
                nats_url=config.nats_url,
                stream=config.nats_stream,
                watcher=watcher,
                counters=counters,
                max_age_s=config.nats_max_age_ms / 1000,
            )
            try:
                async with relay:
                    _say(f"ready {relay.published_seq}")
                    reporter = asyncio.create_task(_report(relay), name="relay-report")
                    if await _stopped_or_failed(relay):
                        _exit_if_stop_hangs()
                    # else: leaving the block raises the relay's error; the parent restarts us
            finally:
                await cancel_and_wait(reporter)
            _say(f"published {relay.published_seq}")


def main() -> int:
    """Entry point; 2 on bad settings."""
    try:
        config = ProcessorConfig.from_env(Env(SETTINGS, os.environ))
    except ConfigError as exc:
        print(f"relay worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
