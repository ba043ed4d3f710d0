"""The embedded PostgreSQL server: real SQL, isolation, restarts, shutdown, startup errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import devstack.postgres
from devstack.ports import free_port, port_is_open
from devstack.postgres import TEST_SETTINGS, EmbeddedPostgres, temporary_database
from devstack.process import EmbeddedServerError


def _scalar(url: str, query: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return row[0]


def test_runs_sql_with_exact_numeric(database_url: str) -> None:
    """NUMERIC arithmetic on the fixture database is exact."""
    assert _scalar(database_url, "SELECT 0.1::numeric + 0.2::numeric") == Decimal("0.3")


def test_database_fixture_is_fresh_and_dropped(postgres_server_url: str) -> None:
    """temporary_database creates an empty database and drops it afterwards."""
    with temporary_database(postgres_server_url) as url:
        name = conninfo_to_dict(url)["dbname"]
        assert _scalar(url, "SELECT current_database()") == name
        assert _scalar(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    with psycopg.connect(postgres_server_url) as conn:
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert gone.fetchone() == (0,)


def test_two_servers_run_at_once(tmp_path: Path) -> None:
    """Two servers listen on different ports and hold separate data."""
    with (
        EmbeddedPostgres(tmp_path / "a", settings=TEST_SETTINGS) as one,
        EmbeddedPostgres(tmp_path / "b", settings=TEST_SETTINGS) as two,
    ):
        assert one.port != two.port
        with psycopg.connect(one.url) as conn:
            conn.execute("CREATE TABLE only_in_one (x int)")
        assert _scalar(one.url, "SELECT to_regclass('only_in_one') IS NOT NULL") is True
        assert _scalar(two.url, "SELECT to_regclass('only_in_one') IS NOT NULL") is False


def test_restart_on_same_data_dir_keeps_data(tmp_path: Path) -> None:
    """A cluster directory that already exists is started as is, with its data."""
    data_dir = tmp_path / "pgdata"
    with EmbeddedPostgres(data_dir, settings=TEST_SETTINGS) as first:
        url = first.create_database("kept")
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t AS SELECT 12.345::numeric AS x")
    with EmbeddedPostgres(data_dir, settings=TEST_SETTINGS) as second:
        url = devstack.postgres.database_url(second.url, "kept")
        assert _scalar(url, "SELECT x FROM t") == Decimal("12.345")


def test_stop_terminates_server_and_removes_temp_dir() -> None:
    """stop() ends the process, closes the port and deletes a temporary cluster."""
    server = EmbeddedPostgres(settings=TEST_SETTINGS).start()
    port, data_dir = server.port, server.data_dir
    assert port_is_open(port)
    server.stop()
    assert not server.running
    assert not port_is_open(port)
    assert not data_dir.exists()
    server.stop()  # idempotent


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 with a listener on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_retries_on_another_port_when_port_is_taken(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the free port is grabbed before the server binds it, startup retries elsewhere."""
    ports = iter([taken_port])
    monkeypatch.setattr(devstack.postgres, "free_port", lambda: next(ports, None) or free_port())
    with EmbeddedPostgres(tmp_path / "pgdata", settings=TEST_SETTINGS) as server:
        assert server.port != taken_port
        assert _scalar(server.url, "SELECT 1") == 1


def test_startup_failure_raises_with_log_tail(tmp_path: Path) -> None:
    """A server that cannot start raises EmbeddedServerError quoting its log."""
    server = EmbeddedPostgres(tmp_path / "pgdata", settings={"shared_buffers": "lots"})
    with pytest.raises(EmbeddedServerError, match="shared_buffers"):
        server.start()
    assert not server.running
