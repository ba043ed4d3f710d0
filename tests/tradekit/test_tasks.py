"""Stopping owned background tasks."""

from __future__ import annotations

import asyncio

import pytest

from tradekit.tasks import cancel_and_wait


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
