"""The head watcher's waits: woken by the head passing, bounded by patience, always
cancellable (the relay's stop cancels a task waiting here)."""

from __future__ import annotations

import asyncio

import pytest

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
