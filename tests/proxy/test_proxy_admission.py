"""The token bucket, the hedge budget and the hedged race (no servers)."""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import ProviderServerError, UnknownSymbol
from proxy.hedging import HedgeBudget, race_with_hedge
from proxy.throttle import Throttle, TokenBucket


def test_bucket_spaces_requests_after_the_burst() -> None:
    """At 10/s with burst 2: two free tokens, then 0.1 s, 0.2 s, 0.3 s waits."""
    bucket = TokenBucket(10, burst=2)
    waits = [bucket.reserve(100.0) for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_with_time_up_to_the_burst() -> None:
    """After a long pause only `burst` tokens are available."""
    bucket = TokenBucket(10, burst=3)
    for _ in range(3):
        bucket.reserve(0.0)
    assert [bucket.reserve(60.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


async def test_throttle_bounds_concurrency() -> None:
    """No more than max_concurrency holders of a slot at once."""
    throttle = Throttle(max_concurrency=3, rate_per_s=None)
    holding = peak = 0

    async def hold() -> None:
        nonlocal holding, peak
        async with throttle.slot():
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0.01)
            holding -= 1

    await asyncio.gather(*(hold() for _ in range(10)))
    assert peak == 3


def test_hedge_budget_allows_its_ratio_over_the_window() -> None:
    """10 % of 20 primaries in the window allows 2 hedges, not 3."""
    budget = HedgeBudget(ratio=0.1, window_s=10.0)
    for i in range(20):
        budget.record_primary(float(i) / 10)
    assert [budget.try_spend(2.0) for _ in range(3)] == [True, True, False]


def test_hedge_budget_forgets_old_requests() -> None:
    """Primaries older than the window no longer earn hedges."""
    budget = HedgeBudget(ratio=0.5, window_s=1.0)
    budget.record_primary(0.0)
    budget.record_primary(0.0)
    assert not budget.try_spend(5.0)


def test_zero_budget_never_hedges() -> None:
    """Ratio 0 turns hedging off."""
    budget = HedgeBudget(ratio=0.0, window_s=10.0)
    for _ in range(100):
        budget.record_primary(1.0)
    assert not budget.try_spend(1.0)


async def test_race_hedge_wins_and_the_slow_primary_is_cancelled() -> None:
    """A stuck primary is hedged after the delay; the hedge wins and the primary is cancelled."""
    calls = 0
    cancelled = asyncio.Event()

    async def send(sent: asyncio.Event) -> str:
        nonlocal calls
        calls += 1
        me = calls
        sent.set()
        if me == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return f"answer {me}"

    result = await race_with_hedge(send, hedge_delay_s=0.01, may_hedge=lambda: True)
    assert (result.value, result.hedged, result.hedge_won) == ("answer 2", True, True)
    assert cancelled.is_set()


async def test_race_without_budget_waits_for_the_primary() -> None:
    """When the budget refuses, no hedge is sent and the primary's answer is used."""
    calls = 0

    async def send(sent: asyncio.Event) -> int:
        nonlocal calls
        calls += 1
        sent.set()
        await asyncio.sleep(0.03)
        return calls

    result = await race_with_hedge(send, hedge_delay_s=0.001, may_hedge=lambda: False)
    assert (result.value, result.hedged, calls) == (1, False, 1)


async def test_race_transient_failure_of_one_waits_for_the_other() -> None:
    """A 5xx on the primary after the hedge left does not end the race; the hedge answers."""
    calls = 0

    async def send(sent: asyncio.Event) -> str:
        nonlocal calls
        calls += 1
        me = calls
        sent.set()
        if me == 1:
            await asyncio.sleep(0.02)
            raise ProviderServerError(503, "busy")
        await asyncio.sleep(0.04)
        return "hedge"

    result = await race_with_hedge(send, hedge_delay_s=0.005, may_hedge=lambda: True)
    assert result.value == "hedge"


async def test_race_permanent_failure_ends_the_race_at_once() -> None:
    """A 404 is final: raised without waiting for the hedge, which is cancelled."""
    calls = 0

    async def send(sent: asyncio.Event) -> str:
        nonlocal calls
        calls += 1
        me = calls
        sent.set()
        if me == 1:
            await asyncio.sleep(0.02)
            raise UnknownSymbol(404, "unknown ticker")
        await asyncio.sleep(10)
        return "never"

    started = asyncio.get_running_loop().time()
    with pytest.raises(UnknownSymbol):
        await race_with_hedge(send, hedge_delay_s=0.005, may_hedge=lambda: True)
    assert asyncio.get_running_loop().time() - started < 1


async def test_race_cancelled_caller_cancels_every_request() -> None:
    """Cancelling the race cancels the primary and the hedge."""
    ended: list[str] = []

    async def send(sent: asyncio.Event) -> None:
        sent.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    task = asyncio.create_task(race_with_hedge(send, hedge_delay_s=0.005, may_hedge=lambda: True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cancelled", "cancelled"]
