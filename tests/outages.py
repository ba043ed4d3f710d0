"""Outages of real servers for tests: a database that refuses connections and cuts its own;
waiting for a server's health to show it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc


@contextlib.asynccontextmanager
async def database_away(database_url: str) -> AsyncIterator[None]:
    """The database of ``database_url`` refuses connections and its sessions are cut, until
    exit."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            yield
        finally:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def health_status(address: str) -> int:
    """The overall health status of the gRPC server at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return int(answer.status)


async def wait_for_health(address: str, wanted: int, timeout_s: float = 15.0) -> int:
    """The server's health status once it is ``wanted``, or the last one seen after
    ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (status := await health_status(address)) != wanted and loop.time() < deadline:  # noqa: ASYNC110 - polls a server
        await asyncio.sleep(0.05)
    return status
