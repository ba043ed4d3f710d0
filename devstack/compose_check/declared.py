"""What each runnable service declares: its environment variables, listen address, health probe.

Read from the services' own configuration modules, so a setting renamed there and not in
``docker-compose.yml`` fails the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from proxy.config import SETTINGS as PROXY_SETTINGS
from simulator.config import OPTIONS as SIMULATOR_OPTIONS
from simulator.config import SimConfig
from tradekit.config import Setting
from vwap.config import SETTINGS as VWAP_SETTINGS

GRPC_HEALTH_CHECK = "grpc.health.v1.Health/Check"


@dataclass(frozen=True, slots=True)
class DeclaredService:
    """The contract of one ``python -m <module>`` service."""

    #: Every environment variable the service reads.
    env_names: frozenset[str]
    #: Variable holding the interface it listens on (must be 0.0.0.0 in a container).
    host_var: str
    #: Variable holding its port, and the port when that variable is unset.
    port_var: str
    default_port: int
    #: Text its health check must contain besides the port (the probe it must use).
    probe: str


def _from_settings(settings: tuple[Setting, ...], prefix: str, probe: str) -> DeclaredService:
    defaults = {s.name: s.default for s in settings}
    return DeclaredService(
        env_names=frozenset(defaults),
        host_var=f"{prefix}_HOST",
        port_var=f"{prefix}_PORT",
        default_port=int(defaults[f"{prefix}_PORT"]),
        probe=probe,
    )


@cache
def declared_services() -> dict[str, DeclaredService]:
    """The services by module name (the ``X`` of ``python -m X``)."""
    return {
        "simulator": DeclaredService(
            env_names=frozenset(o.env for o in SIMULATOR_OPTIONS),
            host_var="SIM_HOST",
            port_var="SIM_PORT",
            default_port=SimConfig().port,
            probe="http://",
        ),
        "proxy": _from_settings(PROXY_SETTINGS, "PROXY", GRPC_HEALTH_CHECK),
        "processor": _from_settings(PROCESSOR_SETTINGS, "PROCESSOR", GRPC_HEALTH_CHECK),
        "vwap": _from_settings(VWAP_SETTINGS, "VWAP", GRPC_HEALTH_CHECK),
    }
