"""Runs the NATS relay in its own process (:mod:`processor.relay_worker`) and keeps it running.

An async context manager: entering starts the worker and waits until it has recovered its
position; while inside, a supervisor task follows the worker's progress lines into the
processor's counters and restarts the worker (after ``restart_delay_s``) whenever it exits,
logging why; leaving asks it to stop gracefully (SIGTERM and end of its stdin), waits up to
``stop_timeout_s``, then kills it. A killed or crashed worker loses nothing: the next one
recovers from ``event_relay`` and the stream's tail, exactly once (see :mod:`processor.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from types import TracebackType

from processor.config import ProcessorConfig
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
    ) -> None:
        self._env = worker_environment(config, os.environ)
        self._counters = counters
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._restart_delay_s = restart_delay_s
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        #: The position when the first worker was ready.
        self._initial: int | None = None
        #: The relay's position (last event sequence JetStream holds, as last reported).
        self.published_seq = 0
        #: Workers started (1 + restarts).
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The current worker's process id."""
        return None if self._proc is None else self._proc.pid

    async def __aenter__(self) -> RelayProcess:
        await self._start()
        self._supervisor = asyncio.create_task(self._supervise(), name="relay-supervisor")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._supervisor = self._supervisor, None
        await cancel_and_wait(task)
        await self._stop()

    async def _start(self) -> None:
        """Start a worker and wait for its ``ready`` line."""
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
        try:
            async with asyncio.timeout(self._ready_timeout_s):
                while True:
                    line = await self._line()
                    if line is None:
                        code = await proc.wait()
                        raise RelayError(f"the relay worker exited with status {code} at start")
                    if line.startswith("ready "):
                        self._advance(int(line.split()[1]))
                        break
        except BaseException:
            await self._stop()
            raise
        log.info("relay_worker_started", pid=proc.pid, position=self.published_seq)

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
        self.published_seq = max(self.published_seq, position)
        self._counters.events_published = self.published_seq - self._initial

    async def _supervise(self) -> None:
        """Follow the worker's progress; restart it whenever it exits."""
        while True:
            line = await self._line()
            if line is not None:
                self._progress(line)
                continue
            assert self._proc is not None
            code = await self._proc.wait()
            log.error("relay_worker_exited", status=code, restart_in_s=self._restart_delay_s)
            await asyncio.sleep(self._restart_delay_s)
            try:
                await self._start()
            except (RelayError, TimeoutError, OSError) as exc:
                log.error("relay_worker_start_failed", error=repr(exc))

    async def _stop(self) -> None:
        """Ask the worker to stop, read its last progress lines, kill it after the bound."""
        proc, self._proc = self._proc, None
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
        log.info("relay_worker_stopped", status=proc.returncode, position=self.published_seq)
