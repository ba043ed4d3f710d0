"""The per-symbol lock every writer of ``trades`` takes (ingest and reconciliation).

The primary key of ``trades`` includes ``ts`` (a hypertable needs its time column in every
unique index), so nothing in the schema stops two writers from storing the same
``(symbol, trade_id)`` at two times. Writers instead take this transaction-scoped advisory lock
per symbol, in sorted symbol order, before touching a symbol's trades; reads made after it
(``NOT EXISTS`` checks, ``verified_until``) then see every committed write of the other writer.
"""

from __future__ import annotations

from collections.abc import Iterable

from processor.db import Connection

#: One statement for all symbols: a function scan yields the array's elements in order, so the
#: locks are taken in the (sorted) order given.
_LOCK_SQL = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended('trades/' || s, 0)))"
    " FROM unnest(%s::text[]) AS s"
)


async def lock_symbol_trades(conn: Connection, symbols: Iterable[str]) -> None:
    """Take the trades lock of each symbol (sorted, so writers never deadlock) until commit,
    in one round trip."""
    await conn.execute(_LOCK_SQL, (sorted(set(symbols)),))
