"""The head watcher's waits: woken by the head passing, bounded by patience, always
cancellable (the relay's stop cancels a task waiting here)."""

from __future__ import annotations

import asyncio

import pytest

from processor.db import Pool
from processor.head_watch import HeadWatcher


def _watcher() -> HeadWatcher:
    return HeadWatcher("not used: these tests never enter the watcher")


async def test_a_wait_returns_true_when_the_head_passes() -> None:
    watcher = _watcher()
    waiting = asyncio.create_task(watcher.wait_beyond(3, patience_s=60))
    await asyncio.sleep(0.01)
    await watcher.advance(3)  # not beyond 3 yet
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await watcher.advance(4)
    assert await waiting is True


async def test_a_wait_returns_false_after_its_patience() -> None:
    watcher = _watcher()
    await watcher.advance(2)
    assert await watcher.wait_beyond(2, patience_s=0.01) is False
    assert watcher.head == 2


async def test_a_wait_cancelled_as_the_head_passes_is_cancelled() -> None:
    """The cancel and the wake-up land in the same loop iteration: the task must end
    cancelled, not return, or whoever cancelled it to stop waits forever."""
    watcher = _watcher()
    waiting = asyncio.create_task(watcher.wait_beyond(0, patience_s=60))
    await asyncio.sleep(0.01)
    await watcher.advance(1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_head_that_moved_back_is_taken_on_reconnect(pool: Pool, database_url: str) -> None:
    """The database restored from an older backup: on reconnecting, the watcher takes the
    lower head it reads (waits beyond it wait again) instead of keeping the old one, which made
    every wait past the new head return at once and streams re-read the log without pause."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE event_head SET seq = 5")
    async with HeadWatcher(database_url) as watcher:
        assert watcher.head == 5
        async with pool.connection() as conn:
            await conn.execute("UPDATE event_head SET seq = 2")
            await conn.execute(  # cut the watcher's LISTEN session: it reconnects
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        for _ in range(100):
            if watcher.head != 5:
                break
            await asyncio.sleep(0.05)
        head_after = watcher.head
        waited = await watcher.wait_beyond(2, patience_s=0.2)
    assert head_after == 2
    assert waited is False
