"""Stopping owned background tasks."""

from __future__ import annotations

import asyncio

import pytest

from tradekit.tasks import cancel_and_wait, cancel_until_done


async def test_a_running_task_is_cancelled_and_awaited() -> None:
    """A task still running is cancelled and has finished when the call returns."""
    task = asyncio.create_task(asyncio.sleep(3600))
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_a_failed_task_reraises_its_error() -> None:
    """A task that crashed before its owner closed does not fail silently."""

    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await cancel_and_wait(task)


async def test_no_task_is_a_no_op() -> None:
    """Closing an owner that never started its task does nothing."""
    await cancel_and_wait(None)


async def test_abandoned_work_that_loses_a_cancellation_is_cancelled_again() -> None:
    """Work that swallows a cancellation and goes on (as nats-py's connect loop does when
    Python 3.11's wait_for loses the cancel of a connection attempt that just failed) still
    ends: a single cancel would leave it running for good."""
    attempts = 0

    async def retrying_connect() -> None:
        nonlocal attempts
        swallowed = False
        while True:
            attempts += 1
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True  # the race: the attempt "failed", try again

    task = asyncio.create_task(retrying_connect())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_until_done(task), timeout=5)
    assert task.cancelled()


async def test_cancel_until_done_leaves_a_finished_task_alone() -> None:
    """A task that already returned keeps its result (nothing is cancelled after the fact)."""

    async def answer() -> int:
        return 42

    task = asyncio.create_task(answer())
    await asyncio.sleep(0)
    await cancel_until_done(task)
    assert task.result() == 42
