"""The service runtime every service shares, exercised on a real `python -m proxy` process:
reflection and health through a real grpcurl binary, graceful shutdown, loud port conflicts."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from trading.v1 import proxy_pb2, proxy_pb2_grpc

from devstack.ports import free_port
from devstack.services import ServiceProcess, ServiceStartError
from tradekit.wire import timestamp_from_ms

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ServiceProcess]:
    """A proxy process whose provider is a closed port, so fetches retry forever."""
    env = {
        "PROXY_PORT": "0",
        "PROVIDER_REST_URL": f"http://127.0.0.1:{free_port()}",
        "PROXY_GRACE": "2s",
        "PROXY_BACKOFF_INITIAL": "50ms",
    }
    with ServiceProcess("proxy", env=env, log_path=tmp_path / "proxy.log") as process:
        yield process


def grpcurl(*args: str) -> str:
    """Run the real grpcurl binary and return its standard output."""
    result = subprocess.run(
        [GRPCURL, *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_lists_the_services(proxy: ServiceProcess) -> None:
    """Reflection lists the service, health and reflection itself."""
    listed = grpcurl("-plaintext", proxy.address, "list").split()
    assert "trading.v1.ProxyService" in listed
    assert "grpc.health.v1.Health" in listed


def test_grpcurl_describes_messages_with_their_comments(proxy: ServiceProcess) -> None:
    """`describe` shows the fields and the comments written in the proto."""
    described = grpcurl("-plaintext", proxy.address, "describe", "trading.v1.Trade")
    assert "string price = 4;" in described
    assert "exact decimal string" in described


def test_grpcurl_describes_a_method(proxy: ServiceProcess) -> None:
    """`describe` resolves a fully qualified method name, with its comment."""
    described = grpcurl(
        "-plaintext", proxy.address, "describe", "trading.v1.ProxyService.FetchTrades"
    )
    assert "rpc FetchTrades ( .trading.v1.FetchTradesRequest ) returns ( stream" in described
    assert "walks the REST API" in described


def test_grpcurl_health_check_reports_serving(proxy: ServiceProcess) -> None:
    """The standard health service answers SERVING for the server and for the service."""
    overall = json.loads(grpcurl("-plaintext", proxy.address, "grpc.health.v1.Health/Check"))
    named = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            '{"service": "trading.v1.ProxyService"}',
            proxy.address,
            "grpc.health.v1.Health/Check",
        )
    )
    assert overall == {"status": "SERVING"}
    assert named == {"status": "SERVING"}


def test_sigterm_with_an_open_stream_exits_zero_within_the_grace_period(
    proxy: ServiceProcess,
) -> None:
    """SIGTERM while a server stream is open ends the process cleanly, exit code 0."""
    channel = grpc.insecure_channel(proxy.address)
    stub = proxy_pb2_grpc.ProxyServiceStub(channel)
    stream = stub.FetchTrades(
        proxy_pb2.FetchTradesRequest(
            symbol="BTC", start_time=timestamp_from_ms(0), end_time=timestamp_from_ms(60_000)
        )
    )
    time.sleep(0.5)
    assert stream.running()
    started = time.monotonic()
    proxy.signal(signal.SIGTERM)
    code = proxy.wait(timeout=15)
    elapsed = time.monotonic() - started
    with pytest.raises(grpc.RpcError):
        list(stream)
    channel.close()
    assert code == 0, proxy.log_tail()
    assert elapsed < 2.0 + 3.0
    assert "event=stopped" in proxy.log_tail()


def test_port_in_use_is_a_startup_error(tmp_path: Path) -> None:
    """A second server on a taken port fails loudly instead of sharing the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = ServiceProcess(
            "proxy",
            env={"PROXY_PORT": str(port)},
            log_path=tmp_path / "p.log",
            startup_timeout=15,
        )
        with pytest.raises(ServiceStartError):
            process.start()
    assert "cannot listen" in process.log_tail()


@pytest.mark.parametrize("module", ["proxy", "processor", "vwap", "simulator"])
def test_every_service_has_help_listing_its_settings(module: str) -> None:
    """`python -m <service> --help` exits 0 and lists environment variables."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "LOG_LEVEL" in result.stdout or "SIM_" in result.stdout
