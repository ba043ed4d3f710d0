"""The ingest benchmark's drain: a reconnect during the measurement makes it invalid at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from bench.ingest import FeedInterrupted, drain
from processor.stats import ProcessorCounters


def _processor(counters: ProcessorCounters) -> Any:
    return SimpleNamespace(counters=counters)


async def test_a_reconnect_during_the_drain_is_reported_not_waited_out() -> None:
    """The feed reconnects with half the backlog stored: the drain raises FeedInterrupted
    within its polling step, long before its timeout."""
    counters = ProcessorCounters(connections=1)

    async def store_half_then_reconnect() -> None:
        await asyncio.sleep(0.05)
        counters.trades_ingested = 50
        await asyncio.sleep(0.05)
        counters.connections = 2

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(store_half_then_reconnect())
        with pytest.raises(FeedInterrupted, match="after 50 trades"):
            await asyncio.wait_for(drain(_processor(counters), 100, timeout_s=60), 5)


async def test_an_uninterrupted_drain_marks_the_shares_in_order() -> None:
    """Without a reconnect the drain returns the 10 %, 90 % and 100 % marks, in order."""
    counters = ProcessorCounters(connections=1)

    async def store() -> None:
        for stored in (10, 90, 100):
            await asyncio.sleep(0.03)
            counters.trades_ingested = stored

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(store())
        marks, _ = await drain(_processor(counters), 100, timeout_s=5)
    assert marks["0.1"] <= marks["0.9"] <= marks["1.0"]
