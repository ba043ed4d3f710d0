"""Stopping owned background tasks."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tradekit.tasks import cancel_and_wait, cancel_until_done, raise_if_cancel_lost


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


async def test_a_loop_whose_cancellation_was_lost_ends_at_its_next_turn() -> None:
    """An owned loop whose cancel a library lost (the turn went on, as when psycopg_pool hands
    over a connection that arrived with the cancel) ends at its next turn instead of waiting
    for more work forever; a timeout it consumed itself does not end it."""
    work: asyncio.Queue[int] = asyncio.Queue()
    turns = 0

    async def owned_loop() -> None:
        nonlocal turns
        while True:
            raise_if_cancel_lost()
            await work.get()
            turns += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.001):
                    await asyncio.sleep(1)  # a timeout of its own: not a cancellation
            # The library's wait, losing the cancel as Python 3.11's wait_for does when the
            # result is there.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    task = asyncio.create_task(owned_loop())
    work.put_nowait(1)
    await asyncio.sleep(0.02)
    assert turns == 1
    assert not task.done()  # the timeout did not end it
    task.cancel()
    await asyncio.wait_for(asyncio.wait({task}), timeout=5)
    assert task.cancelled()
