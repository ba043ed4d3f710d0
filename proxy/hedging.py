"""Hedged requests: when a request runs past the observed p95, send a second one; first wins.

:class:`HedgeBudget` is pure (the caller passes the time): hedges may add at most
``ratio`` extra requests over a sliding time window. :func:`race_with_hedge` is the asyncio
shell; it owns both request tasks and always cancels and awaits the loser.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proxy.errors import AttemptFailed

T = TypeVar("T")


class HedgeBudget:
    """At most ``ratio`` hedges per primary request within the last ``window_s`` seconds."""

    def __init__(self, *, ratio: float, window_s: float) -> None:
        if ratio < 0 or window_s <= 0:
            raise ValueError("need ratio >= 0 and window_s > 0")
        self.ratio = ratio
        self.window_s = window_s
        self._primaries: deque[float] = deque()
        self._hedges: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        horizon = now - self.window_s
        for times in (self._primaries, self._hedges):
            while times and times[0] < horizon:
                times.popleft()

    def record_primary(self, now: float) -> None:
        """Count a request that is not a hedge."""
        self._forget_before(now)
        self._primaries.append(now)

    def try_spend(self, now: float) -> bool:
        """Take one hedge from the budget if it allows one now."""
        self._forget_before(now)
        if len(self._hedges) + 1 > self.ratio * len(self._primaries):
            return False
        self._hedges.append(now)
        return True


@dataclass(frozen=True, slots=True)
class RaceResult(Generic[T]):
    """The winning answer, and whether a hedge was sent and whether it won."""

    value: T
    hedged: bool
    hedge_won: bool


#: Sends one request; sets the event once the request is actually on its way (past admission).
Send = Callable[[asyncio.Event], Coroutine[Any, Any, T]]


async def race_with_hedge(
    send: Send[T],
    *,
    hedge_delay_s: float | None,
    may_hedge: Callable[[], bool],
) -> RaceResult[T]:
    """Send a request; if it runs past ``hedge_delay_s`` and ``may_hedge()``, send one more.

    The first success wins and the other request is cancelled. A transient failure
    (:class:`AttemptFailed`) of one request waits for the other; when both fail, the first
    failure is raised. Any other error is raised at once. Cancelling the caller cancels both.
    """
    sent = asyncio.Event()

    async def primary_send() -> T:
        try:
            return await send(sent)
        finally:
            sent.set()  # wake the hedge timer if the request ended before it was sent

    primary: asyncio.Task[T] = asyncio.create_task(primary_send())
    hedge: asyncio.Task[T] | None = None
    try:
        if hedge_delay_s is not None:
            await sent.wait()
            if not primary.done():
                await asyncio.wait({primary}, timeout=hedge_delay_s)
            if not primary.done() and may_hedge():
                hedge = asyncio.create_task(send(asyncio.Event()))
        pending: set[asyncio.Task[T]] = {primary} if hedge is None else {primary, hedge}
        first_failure: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: t is hedge):
                failure = task.exception()
                if failure is None:
                    return RaceResult(task.result(), hedge is not None, task is hedge)
                if not isinstance(failure, AttemptFailed):
                    raise failure
                first_failure = first_failure or failure
        assert first_failure is not None
        raise first_failure
    finally:
        tasks = [task for task in (primary, hedge) if task is not None]
        for task in tasks:
            task.cancel()
        # Each request records its own outcome (counters, logs); the loser's end is not news.
        await asyncio.gather(*tasks, return_exceptions=True)
