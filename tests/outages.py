"""Outages of real servers for tests: a database that refuses connections and cuts its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg


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
