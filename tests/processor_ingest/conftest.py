"""Fixtures of the ingest tests: a migrated database and a pool on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from processor.db import Pool, open_pool
from processor.schema import migrate


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A connection pool on a fresh, migrated database."""
    await migrate(database_url)
    async with open_pool(database_url, min_size=1, max_size=4) as opened:
        yield opened
