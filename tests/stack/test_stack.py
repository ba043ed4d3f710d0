"""The whole stack as processes: every service healthy, grpcurl commands valid, clean stop,
data resumed by the next stack on the same directory, a taken port refused loudly."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.grpcurl import grpcurl_commands
from devstack.postgres import TEST_SETTINGS
from devstack.services import ServiceProcess
from devstack.stack import FREE_PORTS, Ports, Stack, StackError
from devstack.status import StatusReader

GRPC_SERVICES = ("proxy", "processor", "vwap")
# Unary RPCs: their commands answer and exit (streams would run forever).
UNARY = ("GetStats", "GetCoverage", "GetProcessorStats", "GetVwap", "GetTrades", "ListSymbols")


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return int(answer.status)


def _stored_trades(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM trades").fetchone()
    assert row is not None
    return int(row[0])


def _wait_for_trades(database_url: str, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (count := _stored_trades(database_url)) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    return count


def _stack(data_dir: Path, ports: Ports = FREE_PORTS) -> Stack:
    return Stack(data_dir, profile="flaky", ports=ports, postgres_settings=TEST_SETTINGS)


def test_every_service_serves_and_stops_with_exit_code_0(tmp_path: Path) -> None:
    """Proxy, processor and VWAP report SERVING; on stop every service exits 0."""
    with _stack(tmp_path) as stack:
        assert set(stack.processes) == {"simulator", "proxy", "processor", "vwap"}
        for name in GRPC_SERVICES:
            assert _health(stack.addresses[name]) == health_pb2.HealthCheckResponse.SERVING
        assert (tmp_path / "logs" / "processor.log").stat().st_size > 0
    assert stack.exit_codes == {"vwap": 0, "processor": 0, "proxy": 0, "simulator": 0}
    assert stack.processes == {}


def test_printed_grpcurl_commands_answer(tmp_path: Path) -> None:
    """Every unary grpcurl command the stack prints runs successfully against it."""
    grpcurl = Path(sys.executable).parent / "grpcurl"
    if not grpcurl.exists():
        pytest.skip("grpcurl is not installed in the virtualenv")
    with _stack(tmp_path) as stack:
        _wait_for_trades(stack.database_url)
        commands = [c for c in grpcurl_commands(stack.addresses) if c.endswith(UNARY)]
        assert len(commands) == len(UNARY)
        for command in commands:
            argv = [str(grpcurl), *shlex.split(command)[1:]]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 0, f"{command}\n{done.stderr}"


def test_status_reader_sees_the_ingested_trades(tmp_path: Path) -> None:
    """The live status counts ingested trades and shows a 5-minute VWAP per symbol."""
    with _stack(tmp_path) as stack:
        _wait_for_trades(stack.database_url)
        with StatusReader(
            processor_address=stack.addresses["processor"], vwap_address=stack.addresses["vwap"]
        ) as reader:
            status = reader.read()
            deadline = time.monotonic() + 60
            while not status.relay_ready and time.monotonic() < deadline:  # its worker starts
                time.sleep(0.2)
                status = reader.read()
    assert status.error is None
    assert status.trades_ingested > 0
    assert status.vwaps
    assert all(vwap is not None for vwap in status.vwaps.values())
    assert status.relay_ready  # the processor's relay publishes to the stack's NATS


def _simulator(stack: Stack, path: str) -> Any:
    assert stack.simulator_url is not None
    with urllib.request.urlopen(stack.simulator_url + path, timeout=10) as answer:
        return json.loads(answer.read(), parse_float=Decimal)


def test_second_stack_on_the_same_directory_resumes_the_data(tmp_path: Path) -> None:
    """Trades stored by a first stack are still there when a second one starts on its data,
    and its simulator continues the same market: same start, and the first run's true trades
    again with the same ids and values (a new market would reuse stored ids for other trades
    and lack the first run's, which reconciliation would then delete)."""
    with _stack(tmp_path) as first:
        stored = _wait_for_trades(first.database_url)
        start = _simulator(first, "/stats")["start_ms"]
        truth = {t: _simulator(first, f"/truth/trades?ticker={t}") for t in ("BTC", "ETH")}
    assert stored > 0
    assert all(truth.values())
    with _stack(tmp_path) as second:
        assert _stored_trades(second.database_url) >= stored
        assert _simulator(second, "/stats")["start_ms"] == start
        for ticker, trades in truth.items():
            end = trades[-1]["ts"] + 1
            assert _simulator(second, f"/truth/trades?ticker={ticker}&endTime={end}") == trades


def test_a_taken_port_fails_loudly_naming_the_variable(tmp_path: Path) -> None:
    """A proxy port already in use stops the start with a message naming PROXY_PORT."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        stack = _stack(tmp_path, Ports(simulator=0, proxy=port, processor=0, vwap=0))
        with pytest.raises(StackError, match="PROXY_PORT"):
            stack.start()
    assert stack.processes == {}
    assert stack.exit_codes == {"simulator": 0}


def test_an_external_provider_replaces_the_simulator(tmp_path: Path) -> None:
    """With PROVIDER_REST_URL set, no simulator starts and the processor ingests from the URL."""
    with ServiceProcess(
        "simulator", env={"SIM_PORT": "0"}, log_path=tmp_path / "provider.log"
    ) as provider:
        rest_url = f"http://{provider.address}"
        stack = Stack(
            tmp_path / "stack",
            extra_env={"PROVIDER_REST_URL": rest_url},
            ports=FREE_PORTS,
            postgres_settings=TEST_SETTINGS,
        )
        with stack:
            assert "simulator" not in stack.processes
            assert stack.provider_ws_url == f"ws://{provider.address}/stream"
            assert _wait_for_trades(stack.database_url) > 0
