"""Reconciliation judges what has settled on the provider's clock as the feed shows it: a
provider whose clock runs behind this machine's by more than the settle delay loses no trade
(its windows used to be verified before it had stamped their last trades, which the feed then
delivered into a range already closed, and they were dropped for good)."""

from __future__ import annotations

import asyncio

from processor.app import run_processor
from processor.provider_clock import ProviderClock
from simulator.clock import wall_clock_ms
from tests.processor.support import (
    WINDOW_MS,
    assert_store_equals_truth,
    delete_stream,
    hostile_provider,
    processor_config,
    processor_env,
    stream_name,
    verified_until,
    wait_verified_past,
)

BEHIND_MS = 5_000


def test_the_estimate_is_the_median_lag_when_behind() -> None:
    """The median of the recent lags: a few corrupt future times or delayed frames do not move
    it; a provider ahead counts as not behind; with no trade the clock is this machine's; a
    quiet feed keeps the last estimate."""
    now = [1_000_000]
    clock = ProviderClock(lambda: now[0], samples=5)
    assert clock.now_ms() == 1_000_000
    for lag in (5_010, 5_020, -60_000, 5_015, 90_000):
        clock.observe(now[0] - lag, now[0])
    assert clock.behind_ms() == 5_015
    now[0] += 60_000  # quiet
    assert clock.now_ms() == 1_060_000 - 5_015
    for _ in range(5):
        clock.observe(now[0] + 2_000, now[0])  # ahead
    assert clock.behind_ms() == 0
    assert clock.now_ms() == now[0]
    restarted = ProviderClock(lambda: now[0], samples=5)
    restarted.seed([7_000, 7_100, 6_900])
    assert restarted.now_ms() == now[0] - 7_000


async def test_a_provider_clock_behind_loses_no_trade(database_url: str, nats_url: str) -> None:
    """The simulator's clock 5 s behind (settle delay 1.5 s), the processor restarted once
    (its first turn comes before the feed delivers anything, with the watermark in the past:
    the estimate starts from the stored feed trades' lags): once reconciled, every window from
    the first run's watermark on equals the truth exactly (found by review: the restart's first
    turn verified up to this machine's clock and lost the trades stamped after)."""
    stream = stream_name()
    async with hostile_provider(seed=11, clock=lambda: wall_clock_ms() - BEHIND_MS) as provider:
        env = processor_env(provider, database_url=database_url, nats_url=nats_url, stream=stream)
        try:
            async with run_processor(processor_config(env)):
                await asyncio.sleep(8)
                first = min((await verified_until(database_url)).values())
            async with run_processor(processor_config(env)):
                await asyncio.sleep(1)
                target = max((await verified_until(database_url)).values()) + 3 * WINDOW_MS
                await wait_verified_past(database_url, target, timeout_s=60)
                stored = await assert_store_equals_truth(provider, database_url, first, target)
        finally:
            await delete_stream(nats_url, stream)
    assert stored > 0
