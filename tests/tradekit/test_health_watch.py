"""Health follows a dependency: NOT_SERVING while the probe reports a problem, SERVING once it
answers again. Also the database probe against a real PostgreSQL that goes away and comes
back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from grpc_health.v1 import health_pb2

from tests.outages import database_away, wait_for_health
from tradekit.grpc_server import GrpcServer
from tradekit.health_watch import DatabaseProbe, HealthWatch

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class SwitchableProbe:
    """A dependency the test breaks and repairs."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.problem


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    async with GrpcServer(
        name="test", host="127.0.0.1", port=0, grace_s=0.1, services=[]
    ) as running:
        yield running


async def test_health_follows_the_dependency(server: GrpcServer) -> None:
    probe = SwitchableProbe()
    async with HealthWatch(server, probe, interval_s=0.05, failures_to_trip=1) as watch:
        assert await wait_for_health(server.address, SERVING) == SERVING
        probe.problem = "the database is unreachable: refused"
        assert await wait_for_health(server.address, NOT_SERVING) == NOT_SERVING
        assert watch.problem == "the database is unreachable: refused"
        probe.problem = None
        assert await wait_for_health(server.address, SERVING) == SERVING
        assert watch.problem is None
    calls = probe.calls
    await asyncio.sleep(0.2)
    assert probe.calls == calls  # the watch's task ended with its block


class ScriptedProbe:
    """Answers from a script (then None), noting the health the watch reported at each call."""

    def __init__(self, watch: list[HealthWatch], answers: list[str | None]) -> None:
        self._watch = watch
        self._answers = list(answers)
        self.seen: list[bool] = []

    async def __call__(self) -> str | None:
        self.seen.append(self._watch[0].serving)
        return self._answers.pop(0) if self._answers else None


async def _probe_calls(probe: ScriptedProbe, calls: int) -> None:
    while len(probe.seen) < calls:  # noqa: ASYNC110 - polls a counter, nothing to await
        await asyncio.sleep(0.01)


async def test_failed_probes_fewer_than_the_threshold_keep_it_serving(server: GrpcServer) -> None:
    """Two failures in a row with a threshold of three: still SERVING (a slow answer on a busy
    machine is not an outage); three: NOT_SERVING, and the next success brings it back."""
    holder: list[HealthWatch] = []
    blips = ScriptedProbe(holder, ["slow", "slow", None, "slow", "slow", "slow", None])
    watch = HealthWatch(server, blips, interval_s=0.01, failures_to_trip=3)
    holder.append(watch)
    async with watch:
        await _probe_calls(blips, 9)
    assert blips.seen[:9] == [True, True, True, True, True, True, False, True, True]


async def test_a_crashing_probe_leaves_it_not_serving_and_is_raised(server: GrpcServer) -> None:
    async def broken() -> str | None:
        raise RuntimeError("probe bug")

    watch = HealthWatch(server, broken, interval_s=0.01)
    with pytest.raises(RuntimeError, match="probe bug"):
        async with watch:
            assert await wait_for_health(server.address, NOT_SERVING) == NOT_SERVING
    assert not watch.serving


async def test_the_database_probe_takes_a_new_connection_when_its_own_was_cut(
    database_url: str,
) -> None:
    """The kept connection died (a database restart it is back from): the probe answers from a
    fresh one, not with a false outage."""
    probe = DatabaseProbe(database_url, timeout_s=5)
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    try:
        assert await probe() is None
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            row = await cur.fetchone()
        after_cut = await probe()
    finally:
        await probe.aclose()
    assert row is not None
    assert row[0] == 1  # the probe's own connection was cut
    assert after_cut is None


async def test_the_database_probe_sees_an_outage_and_the_return(database_url: str) -> None:
    probe = DatabaseProbe(database_url, timeout_s=5)
    try:
        assert await probe() is None
        async with database_away(database_url):
            cut = await probe()  # its open connection was cut
            refused = await probe()  # a new one is refused
        back = await probe()
    finally:
        await probe.aclose()
    assert cut is not None
    assert cut.startswith("the database is unreachable: ")
    assert refused is not None
    assert "is not currently accepting connections" in refused
    assert back is None
