"""Health that follows a dependency: NOT_SERVING while it cannot be reached, SERVING again once
it answers.

    async with GrpcServer(...) as server, HealthWatch(server, DatabaseProbe(url)):
        ...

A probe answers ``None`` when the dependency is reachable, or what is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

import psycopg

from tradekit.grpc_server import GrpcServer
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("tradekit.health")

Probe = Callable[[], Awaitable[str | None]]

#: How often the dependency is probed, how long one probe may take, and how many failed
#: probes in a row make the server NOT_SERVING.
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0
FAILURES_TO_TRIP = 2


class DatabaseProbe:
    """Whether a PostgreSQL database answers ``SELECT 1``, over a connection of its own: a
    pool busy with work is not an outage, and the probe must not queue behind it."""

    def __init__(self, database_url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._url = database_url
        self._timeout_s = timeout_s
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def __call__(self) -> str | None:
        kept = self._conn is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    await self._select_one()
                except psycopg.Error:
                    if not kept:
                        raise
                    # The kept connection may have died with a restart the database is
                    # already back from: a fresh one (within the same time) says whether it is
                    # still away.
                    await self.aclose()
                    await self._select_one()
        except TimeoutError:
            await self.aclose()
            return f"the database did not answer within {self._timeout_s:g} s"
        except psycopg.Error as exc:
            await self.aclose()
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return f"the database is unreachable: {first_line}"
        return None

    async def _select_one(self) -> None:
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._conn.execute("SELECT 1")

    async def aclose(self) -> None:
        """Close the probe's connection (the next probe opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class HealthWatch:
    """Probes a dependency every ``interval_s`` and sets the server's health to match; an
    async context manager owning the probing task.

    NOT_SERVING takes ``failures_to_trip`` failed probes in a row (one slow answer on a busy
    machine is not an outage); SERVING comes back with the first probe that succeeds. A probe
    that raises (a bug, not an outage) is logged, leaves the server NOT_SERVING, and is raised
    again when the watch closes."""

    def __init__(
        self,
        server: GrpcServer,
        probe: Probe,
        *,
        dependency: str = "database",
        interval_s: float = PROBE_INTERVAL_S,
        failures_to_trip: int = FAILURES_TO_TRIP,
    ) -> None:
        self._server = server
        self._probe = probe
        self._dependency = dependency
        self._interval_s = interval_s
        self._failures_to_trip = failures_to_trip
        self._task: asyncio.Task[None] | None = None
        #: What is wrong with the dependency now (None while it answers), and how many probes
        #: in a row have said so.
        self.problem: str | None = None
        self.failures = 0
        #: Whether the server is reported SERVING (as far as this watch is concerned).
        self.serving = True

    async def _run(self) -> None:
        try:
            while True:
                self.problem = await self._probe()
                self.failures = 0 if self.problem is None else self.failures + 1
                await self._report()
                await asyncio.sleep(self._interval_s)
        except Exception as exc:
            log.error("health_probe_crashed", dependency=self._dependency, error=repr(exc))
            self.serving = False
            await self._server.set_serving(False)
            raise

    async def _report(self) -> None:
        if self.problem is None and not self.serving:
            self.serving = True
            await self._server.set_serving(True)
            log.info("dependency_back", dependency=self._dependency, health="SERVING")
        elif self.serving and self.failures >= self._failures_to_trip:
            self.serving = False
            await self._server.set_serving(False)
            log.warning(
                "dependency_lost",
                dependency=self._dependency,
                problem=self.problem,
                failed_probes=self.failures,
                health="NOT_SERVING",
            )

    async def __aenter__(self) -> HealthWatch:
        self._task = asyncio.create_task(self._run(), name=f"health-{self._dependency}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await cancel_and_wait(self._task)
        finally:
            closer = getattr(self._probe, "aclose", None)
            if closer is not None:
                await closer()
