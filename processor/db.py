"""Connection types and the connection pool the processor's I/O shells share."""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool

from tradekit.pools import RECONNECT_TIMEOUT_S

Row: TypeAlias = tuple[Any, ...]
Connection: TypeAlias = psycopg.AsyncConnection[Row]
Pool: TypeAlias = AsyncConnectionPool[Connection]

#: Longest wait of a gRPC read (StreamEvents, GetCoverage) for a pooled connection: with the
#: database away the call ends UNAVAILABLE after this instead of the pool's 30 s.
RPC_CONNECTION_WAIT_S = 5.0


def open_pool(conninfo: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    """An unopened pool; use it as ``async with open_pool(...) as pool``."""
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name="processor",
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        configure=_configure,
        # a connection the server cut while it sat in the pool (a restart) is replaced when
        # borrowed, not handed to work that would fail on it
        check=AsyncConnectionPool.check_connection,
    )


async def _configure(conn: Connection) -> None:
    # Commits are durable before they are visible, whatever the server's default: the relay
    # publishes what it reads from the event log, and an event published then lost in a crash
    # (asynchronous commit) would have its sequence written again with another event, which
    # subscribers already hold as the first one (the relay then refuses the stream for good).
    await conn.execute("SET synchronous_commit = on")
    await conn.commit()
