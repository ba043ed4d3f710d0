"""Stopping an owned background task without losing its failure."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(
    task: asyncio.Task[Any] | None, *, again_every_s: float | None = None
) -> None:
    """Cancel ``task`` and wait until it has finished.

    A task that had already failed re-raises its exception here, so an owner's close never
    hides a crash of its background work; a cancellation of the caller itself propagates.
    With ``again_every_s``, the task is cancelled again at that interval until it ends (see
    :func:`cancel_until_done`), for a task whose work may lose a cancellation.
    """
    if task is None:
        return
    if again_every_s is None:
        task.cancel()
    else:
        await cancel_until_done(task, again_every_s)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def cancel_until_done(task: asyncio.Task[Any], every_s: float = 0.5) -> None:
    """Cancel ``task`` again every ``every_s`` until it has finished (its result, error or
    cancellation stays in the task), for work that is abandoned, not asked to clean up.

    One cancellation can be lost: Python 3.11's ``asyncio.wait_for`` returns what it awaited
    when that finished at the moment of the cancel, and a library that tries again on the
    error it then sees runs on as if never cancelled (nats-py's connect loop with an
    unreachable server: about one cancel in ten under a fast retry; its requests and flushes
    wait the same way). Not for tasks that handle their cancellation with a graceful close,
    which a second cancel would cut short (psycopg closes the connection of a query cancelled
    twice, so ``every_s`` leaves it time to cancel the query on the server first).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)


def raise_if_cancel_lost() -> None:
    """Raise CancelledError when the current task was cancelled yet runs on: a library lost the
    cancellation (psycopg_pool's wait for a free connection is Python 3.11's
    ``asyncio.wait_for``, which hands over the connection that arrived with the cancel).
    Called at the head of an owned loop, the loop then ends at its next turn instead of
    waiting forever for more work while its owner waits for it. A cancellation that
    ``asyncio.timeout`` consumed as its own does not count (it is uncancelled)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
