"""Connection types and the connection pool the processor's I/O shells share."""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool

Row: TypeAlias = tuple[Any, ...]
Connection: TypeAlias = psycopg.AsyncConnection[Row]
Pool: TypeAlias = AsyncConnectionPool[Connection]

#: Longest wait of a gRPC read (StreamEvents, GetCoverage) for a pooled connection: with the
#: database away the call ends UNAVAILABLE after this instead of the pool's 30 s.
RPC_CONNECTION_WAIT_S = 5.0


def open_pool(conninfo: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    """An unopened pool; use it as ``async with open_pool(...) as pool``."""
    return AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, open=False, name="processor"
    )
