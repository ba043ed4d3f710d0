"""A caller that goes away (cancel or deadline) stops the HTTP requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from trading.v1 import proxy_pb2

HANGING = {"latency_median_ms": 20_000.0, "latency_sigma": 0.0, "slow_ms": 0.0}


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (polls the simulator's counters)
            await asyncio.sleep(0.01)


async def test_cancelling_the_call_cancels_the_provider_requests(harness: Any) -> None:
    """After the caller cancels, the simulator sees its requests cancelled and none in flight."""
    async with (
        harness.sim("clean", **HANGING) as sim,
        harness.proxy(sim.url, PROXY_ATTEMPT_TIMEOUT_CEILING="60s") as stub,
    ):
        call = stub.FetchTrades(harness.fetch_request("BTC", sim.start_ms, sim.start_ms + 5000))
        reader = asyncio.create_task(call.read())
        await eventually(lambda: sim.rest_in_flight == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await eventually(lambda: sim.rest_in_flight == 0 and sim.rest_cancelled == 1)
        stats = await stub.GetStats(proxy_pb2.GetStatsRequest())
        assert stats.cancelled == 1
        assert stats.windows_in_flight == 0


async def test_a_passed_deadline_cancels_the_provider_requests(harness: Any) -> None:
    """When the gRPC deadline passes, the request in flight is cancelled at the simulator."""
    async with (
        harness.sim("clean", **HANGING) as sim,
        harness.proxy(sim.url, PROXY_ATTEMPT_TIMEOUT_CEILING="60s") as stub,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.fetch(stub, "BTC", sim.start_ms, sim.start_ms + 5000, timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: sim.rest_in_flight == 0 and sim.rest_cancelled >= 1)
        assert sim.running.stats.rest.requests_total == 1
