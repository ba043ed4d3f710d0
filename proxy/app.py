"""Wiring: the proxy service behind its gRPC server, in-process (tests) or as a process.

In-process, for tests and for other packages' tests::

    async with run_proxy(load_config({"PROXY_PORT": "0", ...})) as address:
        channel = grpc.aio.insecure_channel(address)   # address is "127.0.0.1:PORT"
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from proxy.config import ProxyConfig
from proxy.service import ProxyService
from proxy.servicer import registration
from tradekit.grpc_server import GrpcServer


@asynccontextmanager
async def run_proxy(config: ProxyConfig) -> AsyncIterator[str]:
    """Serve the proxy until the block exits; yields the gRPC address ``host:port``."""
    async with (
        ProxyService.from_config(config) as service,
        GrpcServer(
            name="proxy",
            host=config.host,
            port=config.port,
            grace_s=config.grace_ms / 1000,
            services=[registration(service)],
            keepalive=config.keepalive,
        ) as server,
    ):
        yield server.address
