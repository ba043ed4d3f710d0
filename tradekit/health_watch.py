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

#: How often the dependency is probed, and how long one probe may take.
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0


class DatabaseProbe:
    """Whether a PostgreSQL database answers ``SELECT 1``, over a connection of its own: a
    pool busy with work is not an outage, and the probe must not queue behind it."""

    def __init__(self, database_url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._url = database_url
        self._timeout_s = timeout_s
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def __call__(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._conn is None:
                    self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._conn.execute("SELECT 1")
        except TimeoutError:
            await self.aclose()
            return f"the database did not answer within {self._timeout_s:g} s"
        except psycopg.Error as exc:
            await self.aclose()
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return f"the database is unreachable: {first_line}"
        return None

    async def aclose(self) -> None:
        """Close the probe's connection (the next probe opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class HealthWatch:
    """Probes a dependency every ``interval_s`` and sets the server's health to match; an
    async context manager owning the probing task."""

    def __init__(
        self,
        server: GrpcServer,
        probe: Probe,
        *,
        dependency: str = "database",
        interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self._server = server
        self._probe = probe
        self._dependency = dependency
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        #: What is wrong with the dependency now, None while it answers.
        self.problem: str | None = None

    async def _run(self) -> None:
        while True:
            problem = await self._probe()
            if (problem is None) != (self.problem is None):
                await self._server.set_serving(problem is None)
                if problem is None:
                    log.info("dependency_back", dependency=self._dependency, health="SERVING")
                else:
                    log.warning(
                        "dependency_lost",
                        dependency=self._dependency,
                        problem=problem,
                        health="NOT_SERVING",
                    )
            self.problem = problem
            await asyncio.sleep(self._interval_s)

    async def __aenter__(self) -> HealthWatch:
        self._task = asyncio.create_task(self._run(), name=f"health-{self._dependency}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel_and_wait(self._task)
        closer = getattr(self._probe, "aclose", None)
        if closer is not None:
            await closer()
