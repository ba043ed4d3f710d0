"""Runs the NATS relay in its own process (:mod:`processor.relay_worker`) and keeps it running.

An async context manager: entering starts a supervisor task and returns at once, so the
processor starts, ingests and reconciles while NATS (or the relay lock) is unavailable; the
supervisor starts the worker, waits up to ``ready_timeout_s`` for it to recover its position
(the worker logs why it waits, e.g. ``nats_unreachable``), follows its progress lines into the
processor's counters and starts another (after ``restart_delay_s``) whenever it exits or
cannot start, logging why; leaving asks the worker to stop gracefully (SIGTERM and end of its
stdin), waits up to ``stop_timeout_s``, then kills it. ``events_published`` counts from the
position of the first worker that was ready. Given the processor's :class:`HeadWatcher`, a
second task kills a worker that is alive but has made no progress for ``stall_timeout_s``
while events wait (hung, not crashed), and the supervisor starts a new one. A killed or
crashed worker loses nothing: the next one recovers from ``event_relay`` and the stream's
tail, exactly once (see :mod:`processor.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from types import TracebackType

from processor.config import ProcessorConfig
from processor.head_watch import HeadWatcher
from processor.relay import RelayError
from processor.stats import ProcessorCounters
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("processor.relay_process")

WORKER_MODULE = "processor.relay_worker"


def worker_environment(config: ProcessorConfig, base: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: ``base`` with the processor's relay settings."""
    return {
        **base,
        "DATABASE_URL": config.database_url,
        "NATS_URL": config.nats_url,
        "NATS_STREAM": config.nats_stream,
        "NATS_MAX_AGE": f"{config.nats_max_age_ms}ms",
        "LOG_LEVEL": config.log_level,
    }


class RelayProcess:
    """The supervised relay worker process (see module docstring)."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        counters: ProcessorCounters,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 8.0,
        restart_delay_s: float = 1.0,
        max_restart_delay_s: float = 60.0,
        watcher: HeadWatcher | None = None,
        stall_timeout_s: float = 60.0,
    ) -> None:
        self._env = worker_environment(config, os.environ)
        self._counters = counters
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._restart_delay_s = restart_delay_s
        self._max_restart_delay_s = max_restart_delay_s
        self._watcher = watcher
        self._stall_timeout_s = stall_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._supervisor: asyncio.Task[None] | None = None
        self._stall_watch: asyncio.Task[None] | None = None
        #: Loop time of the current worker's start, readiness or last progress.
        self._progress_at = 0.0
        #: The position when the first worker was ready.
        self._initial: int | None = None
        #: The relay's position (last event sequence JetStream holds, as last reported).
        self.published_seq = 0
        #: Workers started (1 + restarts).
        self.starts = 0
        #: Workers killed for making no progress while events waited.
        self.stalls = 0

    @property
    def pid(self) -> int | None:
        """The current worker's process id (None before the first start and between two)."""
        return None if self._proc is None else self._proc.pid

    @property
    def ready(self) -> bool:
        """Whether the current worker has recovered its position and is relaying."""
        return self._ready

    async def __aenter__(self) -> RelayProcess:
        self._supervisor = asyncio.create_task(self._supervise(), name="relay-supervisor")
        if self._watcher is not None:
            self._stall_watch = asyncio.create_task(
                self._watch_stalls(self._watcher), name="relay-stall-watch"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stall_watch, self._stall_watch = self._stall_watch, None
        await cancel_and_wait(stall_watch)
        task, self._supervisor = self._supervisor, None
        await cancel_and_wait(task)
        await self._stop()

    async def _start(self) -> None:
        """Start a worker and wait for its ``ready`` line (stopping it if none comes within
        ``ready_timeout_s``)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        self.starts += 1
        self._progress_at = asyncio.get_running_loop().time()
        reason = ""
        try:
            async with asyncio.timeout(self._ready_timeout_s):
                while True:
                    line = await self._line()
                    if line is None:
                        code = await proc.wait()
                        raise RelayError(
                            f"the relay worker exited with status {code} at start"
                            + (f": {reason}" if reason else "")
                        )
                    if line.startswith("ready "):
                        self._advance(int(line.split()[1]))
                        break
                    if line.startswith("failed "):
                        reason = line.removeprefix("failed ")
        except TimeoutError:
            await self._stop()
            raise RelayError(
                f"the relay worker was not ready within {self._ready_timeout_s:g} s (NATS"
                " unreachable, or another relay holding the relay lock: see its log)"
            ) from None
        except BaseException:
            await self._stop()
            raise
        self._set_ready(True)
        self._progress_at = asyncio.get_running_loop().time()
        log.info("relay_worker_started", pid=proc.pid, position=self.published_seq)

    def _set_ready(self, ready: bool) -> None:
        self._ready = ready
        self._counters.relay_ready = ready

    async def _line(self) -> str | None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        raw = await self._proc.stdout.readline()
        return raw.decode().strip() if raw else None

    def _progress(self, line: str) -> None:
        kind, _, position = line.partition(" ")
        if kind == "published":
            self._advance(int(position))

    def _advance(self, position: int) -> None:
        """The worker reported its position: every event up to it is in JetStream."""
        if self._initial is None:
            self._initial = position
        if position > self.published_seq:
            self.published_seq = position
            self._progress_at = asyncio.get_running_loop().time()
        self._counters.events_published = self.published_seq - self._initial

    async def _supervise(self) -> None:
        """Start the worker and follow its progress; restart it whenever it exits, and again
        as long as starting fails (NATS or the database still away, a stream this log cannot
        use), each time after a delay that doubles from ``restart_delay_s`` up to
        ``max_restart_delay_s`` (back to the first once a worker was ready), logging why."""
        delay = self._restart_delay_s
        while True:
            proc = self._proc
            if proc is None:  # not started yet, or the last start failed (and was stopped)
                if self.starts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_restart_delay_s)  # if this start fails
                try:
                    await self._start()
                except Exception as exc:  # noqa: BLE001 - logged; retried until it starts
                    log.error("relay_worker_start_failed", error=str(exc), retry_in_s=delay)
                else:
                    delay = self._restart_delay_s
                continue
            line = await self._line()
            if line is not None:
                self._progress(line)
                continue
            code = await proc.wait()
            await self._stop()  # releases the exited worker; the next turn starts another
            log.error("relay_worker_exited", status=code, restart_in_s=self._restart_delay_s)

    async def _watch_stalls(self, watcher: HeadWatcher) -> None:
        """Kill a worker that is ready but stuck: events wait beyond its position and it has
        not advanced for ``stall_timeout_s`` (the supervisor then starts a new one, which
        recovers exactly once). One still starting is bounded by ``ready_timeout_s``."""
        loop = asyncio.get_running_loop()
        period = min(1.0, self._stall_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            proc = self._proc
            if proc is None or proc.returncode is not None or not self._ready:
                continue
            if watcher.head <= self.published_seq:
                self._progress_at = loop.time()  # nothing waits: not stuck
                continue
            if loop.time() - self._progress_at < self._stall_timeout_s:
                continue
            self.stalls += 1
            log.error(
                "relay_worker_stalled",
                pid=proc.pid,
                position=self.published_seq,
                head=watcher.head,
                stalled_s=round(loop.time() - self._progress_at, 1),
            )
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                proc.kill()
            self._progress_at = loop.time()

    async def _stop(self) -> None:
        """Ask the worker to stop, read its last progress lines, kill it after the bound. The
        worker stays the current one until it has ended, so a stop interrupted by the
        processor's own shutdown is finished by the next call."""
        proc = self._proc
        self._set_ready(False)
        if proc is None:
            return
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                proc.terminate()
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                assert proc.stdout is not None
                while raw := await proc.stdout.readline():
                    self._progress(raw.decode().strip())
                await proc.wait()
        except TimeoutError:
            log.error("relay_worker_stop_timeout", pid=proc.pid)
            proc.kill()
            await proc.wait()
        if self._proc is proc:
            self._proc = None
        log.info("relay_worker_stopped", status=proc.returncode, position=self.published_seq)
