"""The processor's connection pool: durable commits, and connections the server cut."""

from __future__ import annotations

import psycopg

from processor.db import open_pool


async def test_commits_are_synchronous_whatever_the_servers_default(database_url: str) -> None:
    """With asynchronous commit as the database's default, the processor's sessions still
    commit synchronously: an event the relay reads (and publishes) is durable, so a server
    crash cannot take it back and let its sequence be written again with another event."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        default = await (await conn.execute("SHOW synchronous_commit")).fetchone()
    async with open_pool(database_url, min_size=1, max_size=2) as pool, pool.connection() as conn:
        setting = await (await conn.execute("SHOW synchronous_commit")).fetchone()
    assert default == ("off",)
    assert setting == ("on",)


async def test_a_connection_the_server_cut_is_replaced_when_borrowed(database_url: str) -> None:
    """Every session cut while the pool was idle (a server restart): the next borrower gets a
    working connection, not the dead one."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    async with open_pool(database_url, min_size=2, max_size=2) as pool:
        await pool.wait()
        async with pool.connection() as conn:
            own = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or (0,))[0]
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    assert row[0] != own
