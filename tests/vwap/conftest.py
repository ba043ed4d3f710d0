"""Fixtures for the VWAP service: a migrated store, a fake processor, the running service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import grpc
import pytest
from trading.v1 import vwap_pb2_grpc

from processor.schema import migrate
from tests.vwap.support import FakeProcessor, VwapStarter
from vwap.app import RunningVwap, run_vwap
from vwap.config import VwapConfig


@pytest.fixture
async def store_url(database_url: str) -> str:
    """A fresh database with the processor's schema (plain mode)."""
    await migrate(database_url, "plain")
    return database_url


@pytest.fixture
async def processor(store_url: str) -> AsyncIterator[FakeProcessor]:
    """A running fake processor over the fresh store."""
    fake = FakeProcessor(store_url)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def start_vwap(store_url: str, processor: FakeProcessor) -> VwapStarter:
    """Start the VWAP service (config overrides as keywords); yields (running, stub)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[RunningVwap, Any]]:
        config = replace(
            VwapConfig(
                port=0,
                database_url=store_url,
                processor_address=processor.address,
                grace_s=0.2,
                # The scenarios use fixed past times; boundaries close as later trades arrive.
                close_on_clock=False,
            ),
            **overrides,
        )
        async with (
            run_vwap(config) as running,
            grpc.aio.insecure_channel(running.address) as channel,
        ):
            yield running, vwap_pb2_grpc.VwapServiceStub(channel)  # type: ignore[no-untyped-call]

    return start
