"""The real servers a benchmark runs against: a throwaway PostgreSQL cluster (durability off,
as for tests) and NATS with JetStream; or the ones named by ``$DATABASE_URL``/``$NATS_URL``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from devstack.nats import EmbeddedNats
from devstack.postgres import TEST_SETTINGS, EmbeddedPostgres, temporary_database


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for the benchmark's databases."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with EmbeddedPostgres(settings=TEST_SETTINGS) as server:
        yield server.url


@contextlib.contextmanager
def fresh_database(prefix: str = "bench") -> Iterator[str]:
    """A fresh, uniquely named database on :func:`postgres_server`, dropped afterwards."""
    with postgres_server() as server_url, temporary_database(server_url, prefix) as url:
        yield url


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """URL of a NATS server with JetStream."""
    if url := os.environ.get("NATS_URL"):
        yield url
        return
    with EmbeddedNats() as server:
        yield server.url
