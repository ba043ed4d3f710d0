"""The whole system as processes: PostgreSQL, NATS, simulator, proxy, processor and VWAP service.

:class:`Stack` starts them in dependency order, each as its own process logging to
``data_dir/logs/<name>.log``, and stops them in reverse order (SIGTERM, then wait). Data lives
under ``data_dir`` (``postgres/``, ``nats/``), so a second stack on the same directory resumes
where the first stopped, the simulator continuing the same market (:mod:`devstack.market`).
Variables in ``extra_env`` win over everything the stack would set: ``DATABASE_URL`` /
``NATS_URL`` replace the embedded servers, ``PROVIDER_REST_URL`` / ``PROVIDER_WS_URL`` replace
the simulator, and each service's own variables pass through.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import psycopg

from devstack.detached import MODULE_VARIABLE
from devstack.market import market_start_ms
from devstack.nats import EmbeddedNats
from devstack.ports import LOOPBACK, port_is_open
from devstack.postgres import SUPERUSER, EmbeddedPostgres, create_database
from devstack.services import ServiceProcess, ServiceStartError

DATABASE: Final = "trading"

#: Services in start order (stopped in reverse), with the variable holding each one's port.
SERVICES: Final = ("simulator", "proxy", "processor", "vwap")
PORT_VARIABLES: Final = {
    "simulator": "SIM_PORT",
    "proxy": "PROXY_PORT",
    "processor": "PROCESSOR_PORT",
    "vwap": "VWAP_PORT",
}


class StackError(RuntimeError):
    """The stack could not start; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Ports:
    """TCP ports of the services on 127.0.0.1; 0 picks a free port."""

    #: Provider simulator (REST, WebSocket, truth).
    simulator: int = 8700
    #: ProxyService.
    proxy: int = 50051
    #: ProcessorService.
    processor: int = 50052
    #: VwapService.
    vwap: int = 50053


DEFAULT_PORTS: Final = Ports()
FREE_PORTS: Final = Ports(simulator=0, proxy=0, processor=0, vwap=0)


def _provider_urls(extra_env: Mapping[str, str]) -> tuple[str, str] | None:
    """The external provider's (REST, WebSocket) URLs when ``extra_env`` names one."""
    rest = extra_env.get("PROVIDER_REST_URL")
    ws = extra_env.get("PROVIDER_WS_URL")
    if rest is None and ws is None:
        return None
    if rest is None:
        assert ws is not None
        rest = "http" + ws.removeprefix("ws").removesuffix("/stream")
    if ws is None:
        ws = "ws" + rest.removeprefix("http").rstrip("/") + "/stream"
    return rest, ws


def _ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` unless it exists."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if not exists:
        create_database(server_url, name)


class Stack:
    """Every server of the system as a child process; a context manager stopping them all.

    ``profile`` is the simulator's fault profile and ``sim_env`` its further ``SIM_*``
    settings. ``extra_env`` goes to every service and overrides what the stack sets.
    ``postgres_settings`` are server options of the embedded PostgreSQL.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        profile: str = "flaky",
        sim_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        ports: Ports = DEFAULT_PORTS,
        postgres_settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.profile = profile
        self._sim_env = dict(sim_env or {})
        self._extra_env = dict(extra_env or {})
        self._ports = ports
        self._postgres_settings = dict(postgres_settings or {})
        self._startup_timeout = startup_timeout
        self.log_dir = self.data_dir / "logs"
        #: Running services by name, in start order.
        self.processes: dict[str, ServiceProcess] = {}
        #: Exit codes of the stopped services.
        self.exit_codes: dict[str, int | None] = {}
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.database_url = ""
        self.nats_url = ""
        self.provider_rest_url = ""
        self.provider_ws_url = ""

    @property
    def addresses(self) -> dict[str, str]:
        """``host:port`` of each running service."""
        return {name: process.address for name, process in self.processes.items()}

    @property
    def simulator_url(self) -> str | None:
        """Base URL of the simulator, None when an external provider is used."""
        process = self.processes.get("simulator")
        return f"http://{process.address}" if process is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start everything in dependency order; on failure stop what started and raise."""
        try:
            self._start_backends()
            self._start_services()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the services in reverse order, then NATS and PostgreSQL. Idempotent."""
        for name in reversed(list(self.processes)):
            self.exit_codes[name] = self.processes.pop(name).stop()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _start_backends(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if url := self._extra_env.get("DATABASE_URL"):
            self.database_url = url
        else:
            self.postgres = EmbeddedPostgres(
                self.data_dir / "postgres", settings=self._postgres_settings, die_with_parent=True
            ).start()
            _ensure_database(self.postgres.url, DATABASE)
            self.database_url = (
                f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.postgres.port}/{DATABASE}"
            )
        if url := self._extra_env.get("NATS_URL"):
            self.nats_url = url
        else:
            self.nats = EmbeddedNats(self.data_dir / "nats", die_with_parent=True).start()
            self.nats_url = self.nats.url

    def _start_services(self) -> None:
        provider = _provider_urls(self._extra_env)
        if provider is None:
            now_ms = time.time_ns() // 1_000_000
            sim_env = {
                "SIM_PORT": str(self._ports.simulator),
                "SIM_PROFILE": self.profile,
                "SIM_START_MS": str(market_start_ms(self.data_dir, self._sim_env, now_ms)),
                **self._sim_env,
            }
            simulator = self._start("simulator", sim_env)
            self.provider_rest_url = f"http://{simulator.address}"
            self.provider_ws_url = f"ws://{simulator.address}/stream"
        else:
            self.provider_rest_url, self.provider_ws_url = provider
        proxy = self._start(
            "proxy",
            {"PROXY_PORT": str(self._ports.proxy), "PROVIDER_REST_URL": self.provider_rest_url},
        )
        processor = self._start(
            "processor",
            {
                "PROCESSOR_PORT": str(self._ports.processor),
                "DATABASE_URL": self.database_url,
                "NATS_URL": self.nats_url,
                "PROVIDER_WS_URL": self.provider_ws_url,
                "PROXY_ADDRESS": proxy.address,
            },
        )
        self._start(
            "vwap",
            {
                "VWAP_PORT": str(self._ports.vwap),
                "DATABASE_URL": self.database_url,
                "PROCESSOR_ADDRESS": processor.address,
            },
        )

    def _start(self, name: str, env: Mapping[str, str]) -> ServiceProcess:
        """Start service ``name`` (its package is ``name``) with ``env`` + ``extra_env``."""
        full_env = {**env, **self._extra_env} if name != "simulator" else dict(env)
        port = int(full_env.get(PORT_VARIABLES[name], "0"))
        if port and port_is_open(port):
            raise StackError(
                f"port {port} for the {name} is already in use on {LOOPBACK}: stop whatever "
                f"listens there, or set {PORT_VARIABLES[name]} to another port (0 = any free port)"
            )
        process = ServiceProcess(
            "devstack.detached",
            env={**full_env, MODULE_VARIABLE: name},
            log_path=self.log_dir / f"{name}.log",
            startup_timeout=self._startup_timeout,
        )
        try:
            self.processes[name] = process.start()
        except ServiceStartError as exc:
            raise StackError(f"the {name} did not start: {exc}") from exc
        return process
