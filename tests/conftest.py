"""Shared pytest fixtures. Servers are real (see ``devstack``), never mocks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest puts tests/ on sys.path; a tests/<package>/ folder without __init__.py then shadows the
# real top-level <package> as a namespace package unless the project root is importable too.
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from devstack.nats import EmbeddedNats  # noqa: E402
from devstack.postgres import TEST_SETTINGS, EmbeddedPostgres, temporary_database  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """PostgreSQL server for the session: ``$DATABASE_URL`` if set, else an embedded one."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with EmbeddedPostgres(settings=TEST_SETTINGS) as server:
        yield server.url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """Connection string of a fresh, uniquely named database, dropped after the test."""
    with temporary_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """NATS server with JetStream for the session: ``$NATS_URL`` if set, else an embedded one."""
    if url := os.environ.get("NATS_URL"):
        yield url
        return
    with EmbeddedNats() as server:
        yield server.url
