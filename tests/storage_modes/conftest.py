"""Fixtures of the storage-mode tests: a PGlite + TimescaleDB database with the migrations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.pglite import PgliteTimescale
from processor.schema import StorageMode, migrations_for


@pytest.fixture
def timescale() -> Iterator[PgliteTimescale]:
    """A fresh in-memory PGlite + TimescaleDB with the project's TimescaleDB migrations."""
    with PgliteTimescale() as db:
        for migration in migrations_for(StorageMode.TIMESCALE):
            db.execute_script(migration.sql)
        yield db
