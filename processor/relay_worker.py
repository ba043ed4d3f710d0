"""The NATS relay's own process: ``python -m processor.relay_worker``, started and supervised by
the processor (:class:`processor.relay_process.RelayProcess`), never by hand.

Publishing every event costs CPU (about a fifth of ingesting it, reading the log back
included); in its own process the relay runs on another core and a slow NATS never takes time
from the feed. Settings come from the environment (``DATABASE_URL``, ``NATS_URL``,
``NATS_STREAM``, ``NATS_MAX_AGE``, ``LOG_LEVEL``, as the processor's). It talks to its parent
in lines on stdout: ``ready <position>`` once recovered, then ``published <position>``
whenever it advanced (at most every ``REPORT_INTERVAL_S``); ``failed <reason>`` when it
cannot start (it then exits 1). It stops gracefully (publishing what is committed, within a
bound) on SIGTERM or when its stdin closes, and Linux sends it SIGTERM when the processor
dies, so it never outlives a processor that was killed; a stop requested while it is still
starting (waiting for the relay lock or for NATS) ends it at once.

Only one relay publishes an event log at a time: it holds a session advisory lock for its
lifetime (released by PostgreSQL when its connection dies), so a restarted processor's relay
waits for a previous one that is still draining. A worker whose lock connection is gone (a
database restart, a terminated session) stops publishing, without a drain, and exits; the
next worker takes the lock again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from processor.config import SETTINGS, ProcessorConfig
from processor.db import open_pool
from processor.head_watch import HeadWatcher
from processor.relay import NatsRelay
from processor.stats import ProcessorCounters
from tradekit.config import ConfigError, Env
from tradekit.logs import configure_logging, event_logger
from tradekit.tasks import cancel_and_wait, cancel_until_done

log = event_logger("processor.relay_worker")

REPORT_INTERVAL_S = 0.05
#: Longest graceful stop (the relay's drain is bounded by 5 s, closing NATS by 5 s more).
STOP_BOUND_S = 15.0
STOP_HUNG_STATUS = 3
RELAY_LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('event-relay', 0))"
#: How often the worker checks the connection holding the relay lock is still there, and how
#: long the check may take (a database host gone without a reset leaves it hanging for as long
#: as TCP retransmits, about 15 min, while a new primary hands the lock to another relay;
#: cancelling the hung check then takes psycopg up to 10 s more).
LOCK_CHECK_S = 1.0
LOCK_CHECK_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


def _exit_if_stop_hangs() -> None:
    """Exit hard if the graceful stop takes longer than ``STOP_BOUND_S`` (a thread, so even a
    stuck event loop cannot keep an orphaned worker alive). Nothing is lost: the next relay
    recovers what this one published without recording it."""
    timer = threading.Timer(STOP_BOUND_S, os._exit, args=(STOP_HUNG_STATUS,))
    timer.daemon = True
    timer.start()


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the processor dies, even by SIGKILL: a stop request like
    any other, though the worker's stdin stays open (nothing else on other systems). A
    processor that died before this took effect closed the worker's stdin already."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("parent_death_signal_refused", errno=ctypes.get_errno())


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _StopRequests:
    """Stop requests, watched from the worker's first moment: SIGTERM, SIGINT, or the end of
    stdin (the parent is gone). The first request also bounds the worker's remaining life
    (:func:`_exit_if_stop_hangs`). An async context manager."""

    def __init__(self) -> None:
        self._requested = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._transport: asyncio.BaseTransport | None = None

    async def __aenter__(self) -> _StopRequests:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request, sig.name)
        reader = asyncio.StreamReader()
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        self._watch = asyncio.create_task(self._parent_gone(reader), name="parent-watch")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        watch, self._watch = self._watch, None
        await cancel_and_wait(watch)
        if self._transport is not None:
            self._transport.close()

    def _request(self, why: str) -> None:
        if not self._requested.is_set():
            log.info("relay_worker_stop_requested", by=why)
            self._requested.set()
            _exit_if_stop_hangs()

    async def _parent_gone(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass
        self._request("stdin closed")

    async def wait(self) -> None:
        """Return once a stop was requested."""
        await self._requested.wait()

    async def unless_stopped(self, work: Coroutine[Any, Any, _T]) -> _T | None:
        """Run ``work`` until it is done (its result or error) or a stop is requested (it is
        cancelled: None)."""
        task = asyncio.create_task(work, name="relay-worker-start")
        stop = asyncio.create_task(self.wait(), name="relay-worker-stop-wait")
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelled until done: nats-py's connect loop can lose a cancel (Python 3.11).
            for pending in (task, stop):
                await cancel_until_done(pending)
        return None if task.cancelled() else task.result()


class RelayLockLost(Exception):
    """The connection holding the relay lock is gone, and the lock with it: another relay may
    hold it now, so this one must not publish on (not even its drain)."""


async def _lock_lost(lock_conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise RelayLockLost once the connection holding the relay lock is gone (a database
    restart, a terminated session); run until then."""
    while True:
        await asyncio.sleep(LOCK_CHECK_S)
        try:
            async with asyncio.timeout(LOCK_CHECK_TIMEOUT_S):
                await lock_conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError) as exc:
            raise RelayLockLost(
                "the connection holding the relay lock was lost"
                f" ({' '.join(str(exc).split()) or type(exc).__name__}): restarting to take it"
                " again"
            ) from exc


async def _until_stopped_or_failed(
    relay: NatsRelay, stop: _StopRequests, lock_conn: psycopg.AsyncConnection[Any]
) -> None:
    """Wait for a stop request or the relay's failure (logged; leaving the relay's block
    raises it); raise RelayLockLost when the relay lock is lost."""
    stopped = asyncio.create_task(stop.wait(), name="relay-stop")
    failure = asyncio.create_task(relay.failure(), name="relay-failure")
    lock = asyncio.create_task(_lock_lost(lock_conn), name="relay-lock")
    try:
        done, _ = await asyncio.wait({stopped, failure, lock}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopped, failure, lock):
            if not task.done():
                await cancel_and_wait(task)
    if failure in done:
        log.error("relay_failed", error=repr(failure.exception()))
    elif lock in done:
        log.error("relay_lock_lost", error=str(lock.exception()))
        lock.result()  # raises: the relay's block is left without a drain


async def _report(relay: NatsRelay) -> None:
    reported = -1
    while True:
        if relay.published_seq != reported:
            reported = relay.published_seq
            _say(f"published {reported}")
        await asyncio.sleep(REPORT_INTERVAL_S)


async def _start(
    config: ProcessorConfig, stack: contextlib.AsyncExitStack, counters: ProcessorCounters
) -> tuple[NatsRelay, psycopg.AsyncConnection[Any]]:
    """Take the relay lock (waiting for a relay still draining), connect to NATS (waiting as
    long as it is unreachable) and recover the relay's position; the relay and the connection
    holding the lock; ``stack`` releases it all."""
    lock_conn = await stack.enter_async_context(
        await psycopg.AsyncConnection.connect(config.database_url, autocommit=True)
    )
    await lock_conn.execute(RELAY_LOCK_SQL)
    pool = await stack.enter_async_context(open_pool(config.database_url, min_size=1, max_size=2))
    watcher = await stack.enter_async_context(HeadWatcher(config.database_url))
    relay = NatsRelay(
        pool=pool,
        nats_url=config.nats_url,
        stream=config.nats_stream,
        watcher=watcher,
        counters=counters,
        max_age_s=config.nats_max_age_ms / 1000,
    )
    return await stack.enter_async_context(relay), lock_conn


async def run(config: ProcessorConfig) -> None:
    """Hold the relay lock, relay until asked to stop, report progress to the parent.

    A stop requested before the relay is ready (waiting for the lock, for NATS, recovering)
    ends the worker at once: what is committed is published by the next relay, which recovers
    whatever this one did exactly once. The reporter keeps running while the relay drains on
    the way out, so the parent learns the final position as soon as it is published, even if
    closing the connections is slow."""
    counters = ProcessorCounters()
    reporter: asyncio.Task[None] | None = None
    async with _StopRequests() as stop, contextlib.AsyncExitStack() as stack:
        try:
            started = await stop.unless_stopped(_start(config, stack, counters))
        except Exception as exc:
            # e.g. a stream holding another log's events (RelayError), JetStream refusing the
            # stream: the parent logs the reason and tries again later
            _say(f"failed {' '.join(str(exc).split()) or repr(exc)}")
            raise
        if started is None:
            log.info("relay_worker_stopped_before_ready")
            return
        relay, lock_conn = started
        try:
            _say(f"ready {relay.published_seq}")
            reporter = asyncio.create_task(_report(relay), name="relay-report")
            await _until_stopped_or_failed(relay, stop, lock_conn)
            await stack.aclose()  # drains after a stop; raises the relay's failure (restarted)
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
    _die_with_parent()
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
