"""The per-symbol trades lock: every symbol's lock, in one statement, held until commit."""

from __future__ import annotations

import asyncio

import psycopg

from processor.trade_lock import lock_symbol_trades

_HELD_SQL = (
    "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) FROM pg_locks"
    " WHERE locktype = 'advisory' AND pid = %s"
)


async def _held(probe: psycopg.AsyncConnection[tuple[int, int]], pid: int) -> tuple[int, int]:
    cur = await probe.execute(_HELD_SQL, (pid,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_every_symbol_is_locked_until_commit(database_url: str) -> None:
    """Each distinct symbol's lock is taken; another writer of one of them waits for the
    commit, a writer of another symbol does not."""
    connect = psycopg.AsyncConnection.connect
    async with (
        await connect(database_url) as holder,
        await connect(database_url) as blocked,
        await connect(database_url) as free,
        await connect(database_url, autocommit=True) as probe,
    ):
        await lock_symbol_trades(holder, ["ETH", "BTC", "ETH", "SOL"])
        assert await _held(probe, holder.info.backend_pid) == (3, 0)

        await lock_symbol_trades(free, ["XRP"])
        assert await _held(probe, free.info.backend_pid) == (1, 0)

        waiting = asyncio.create_task(lock_symbol_trades(blocked, ["BTC", "DOGE"]))
        for _ in range(500):  # bounded: turns a hang into a failure
            if await _held(probe, blocked.info.backend_pid) == (0, 1):
                break
            await asyncio.sleep(0.01)
        assert await _held(probe, blocked.info.backend_pid) == (0, 1)  # BTC waits, DOGE not yet
        assert not waiting.done()

        await holder.commit()
        await asyncio.wait_for(waiting, 10)
        assert await _held(probe, blocked.info.backend_pid) == (2, 0)
        assert await _held(probe, holder.info.backend_pid) == (0, 0)
