"""Fixtures of the relay tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.errors import NotFoundError

from processor.db import Pool, open_pool
from processor.schema import migrate


@pytest.fixture
async def stream_name(nats_url: str) -> AsyncIterator[str]:
    """A fresh JetStream stream name, the stream deleted after the test whatever its outcome:
    every relay stream takes the same subjects, so one left behind would fail the next test."""
    name = f"RELAY{time.monotonic_ns()}"
    yield name
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A migrated database with an empty event log."""
    await migrate(database_url, "plain")
    async with open_pool(database_url) as pool:
        yield pool
