"""Health follows a dependency: NOT_SERVING while the probe reports a problem, SERVING once it
answers again. Also the database probe against a real PostgreSQL that goes away and comes
back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
    async with HealthWatch(server, probe, interval_s=0.05) as watch:
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
