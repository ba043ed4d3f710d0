"""The shared entry point: a started service's start-up heap is frozen out of the collector."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from tradekit.entry import serve_until_signal


def _collector_walks(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@asynccontextmanager
async def _probed(look: Callable[[], object]) -> AsyncIterator[None]:
    """A service that, once serve_until_signal is past its freeze, calls ``look`` and then
    sends itself SIGTERM."""

    async def probe() -> None:
        await asyncio.sleep(0)  # runs once serve_until_signal is past the freeze
        look()
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(probe())
    try:
        yield
    finally:
        await task


async def test_a_started_service_freezes_its_startup_heap_then_stops_on_sigterm() -> None:
    """Objects made at start-up are out of the collector's walks while the service runs;
    SIGTERM then ends serving."""
    startup_object: list[list[str]] = [["made at start-up"]]
    walked: list[bool] = []
    gc.unfreeze()
    assert _collector_walks(startup_object)
    try:
        service = _probed(lambda: walked.append(_collector_walks(startup_object)))
        await asyncio.wait_for(serve_until_signal(service), 10)
    finally:
        gc.unfreeze()
    assert walked == [False]


async def test_a_service_may_set_the_collectors_thresholds() -> None:
    """``gc_thresholds`` are in force while the service runs (the processor's are its own)."""
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    try:
        service = _probed(lambda: seen.append(gc.get_threshold()))
        await asyncio.wait_for(serve_until_signal(service, gc_thresholds=(12_345, 11, 13)), 10)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert seen == [(12_345, 11, 13)]
    assert before != (12_345, 11, 13)
