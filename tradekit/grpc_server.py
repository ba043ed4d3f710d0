"""The asyncio gRPC server every service runs: health, reflection, graceful shutdown.

    async with GrpcServer(name="proxy", host="127.0.0.1", port=0, grace_s=5.0,
                          services=[ProxyRegistration(...)]) as server:
        await wait_for_shutdown_signal()
    # leaving the block: health NOT_SERVING, in-flight RPCs get the grace period, then stop

A port that is already in use is a startup error (``SO_REUSEPORT`` is disabled), never a
silent second server.

The server pings every connection every ``keepalive.interval_s`` (HTTP/2 PING, also while
nothing can be sent: a client that stopped reading is exactly the one to check) and closes one
whose client does not answer within ``keepalive.timeout_s`` (settings ``GRPC_KEEPALIVE`` and
``GRPC_KEEPALIVE_TIMEOUT``, the same in every service): a stopped or vanished client's calls
end, and writes waiting on its full flow-control window fail, instead of being held for good.
Clients' own keepalive pings are accepted every 5 s and more, with or without calls.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradekit.config import Env, Setting
from tradekit.logs import event_logger
from tradekit.reflection import enable_documented_reflection

log = event_logger("tradekit.grpc")


#: Seconds between the server's keepalive pings on each connection.
KEEPALIVE_S = 30.0
#: Seconds a client has to answer a keepalive ping before its connection is closed.
KEEPALIVE_TIMEOUT_S = 10.0

#: The keepalive settings every service reads (the same names in each).
KEEPALIVE_SETTINGS = (
    Setting(
        "GRPC_KEEPALIVE",
        "30s",
        "How often the gRPC server pings each client connection (also one it cannot send to)",
    ),
    Setting(
        "GRPC_KEEPALIVE_TIMEOUT",
        "10s",
        "How long a client has to answer a ping before its connection and calls are closed",
    ),
)


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The server's keepalive: a ping every ``interval_s`` on each connection, ``timeout_s``
    for the client to answer it."""

    interval_s: float = KEEPALIVE_S
    timeout_s: float = KEEPALIVE_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Env) -> Keepalive:
        """From ``GRPC_KEEPALIVE`` and ``GRPC_KEEPALIVE_TIMEOUT`` (each at least 1 s)."""
        return cls(
            interval_s=env.duration_ms("GRPC_KEEPALIVE", minimum=1000) / 1000,
            timeout_s=env.duration_ms("GRPC_KEEPALIVE_TIMEOUT", minimum=1000) / 1000,
        )


class PortInUseError(RuntimeError):
    """The gRPC server could not bind its address."""


@dataclass(frozen=True, slots=True)
class ServiceRegistration:
    """One gRPC service to serve: its full name and the function that adds it to a server."""

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]


class GrpcServer:
    """A started ``grpc.aio`` server with health and reflection; an async context manager."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        grace_s: float,
        services: Sequence[ServiceRegistration],
        max_concurrent_streams: int = 2000,
        keepalive: Keepalive = Keepalive(),
    ) -> None:
        self.name = name
        self._address = f"{host}:{port}"
        self._host = host
        self._grace_s = grace_s
        self._services = tuple(services)
        self._health = health_aio.HealthServicer()
        #: Set when shutdown begins; long-lived streams watch it and finish early.
        self.stopping = asyncio.Event()
        self._server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", max_concurrent_streams),
                ("grpc.keepalive_time_ms", round(keepalive.interval_s * 1000)),
                ("grpc.keepalive_timeout_ms", round(keepalive.timeout_s * 1000)),
                # What gRPC core waits for a ping's ack (else 1 minute, whatever the above).
                ("grpc.http2.ping_timeout_ms", round(keepalive.timeout_s * 1000)),
                # Keep pinging a connection the server cannot send data on (a stalled reader).
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ]
        )
        self._stopped = False
        self._health_names: list[str] = []
        self.port = 0

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        return f"{self._host}:{self.port}"

    async def start(self) -> None:
        """Register services, bind, start and report SERVING."""
        for service in self._services:
            service.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [s.full_name for s in self._services]
        enable_documented_reflection(names, self._server)
        try:
            self.port = self._server.add_insecure_port(self._address)
        except RuntimeError as exc:
            raise PortInUseError(f"cannot listen on {self._address}: {exc}") from exc
        if self.port == 0:
            raise PortInUseError(f"cannot listen on {self._address}: address in use?")
        await self._server.start()
        self._health_names = ["", *names]
        await self.set_serving(True)
        log.info("serving", service=self.name, address=self.address)

    async def set_serving(self, serving: bool) -> None:
        """Report the server and each of its services SERVING or NOT_SERVING (a server shutting
        down stays NOT_SERVING)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service_name in self._health_names:
            await self._health.set(service_name, status)

    async def stop(self) -> None:
        """Report NOT_SERVING, let in-flight RPCs finish within the grace period, stop.

        Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        await self._health.enter_graceful_shutdown()
        log.info("stopping", service=self.name, grace_s=self._grace_s)
        await self._server.stop(self._grace_s)
        log.info("stopped", service=self.name)

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def wait_for_shutdown_signal() -> signal.Signals:
    """Wait for SIGTERM or SIGINT and return which one arrived."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        sig = await received
    finally:
        for sig_to_remove in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig_to_remove)
    log.info("signal_received", signal=sig.name)
    return sig
