"""GRPC_KEEPALIVE and GRPC_KEEPALIVE_TIMEOUT: the same two settings in every service, read into
the keepalive its gRPC server is started with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from processor.config import ProcessorConfig
from proxy.config import load_config as load_proxy_config
from tradekit.config import ConfigError, Env
from tradekit.grpc_server import Keepalive
from vwap.config import VwapConfig


def _processor(environ: Mapping[str, str]) -> Any:
    return ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, environ))


_LOADERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "proxy": load_proxy_config,
    "processor": _processor,
    "vwap": VwapConfig.from_env,
}


@pytest.mark.parametrize("service", sorted(_LOADERS))
def test_each_service_reads_the_keepalive_settings(service: str) -> None:
    """Defaults 30 s and 10 s; set, they are the server's; under a second is refused by name."""
    load = _LOADERS[service]
    assert load({}).keepalive == Keepalive(interval_s=30.0, timeout_s=10.0)
    tuned = load({"GRPC_KEEPALIVE": "2m", "GRPC_KEEPALIVE_TIMEOUT": "20s"})
    assert tuned.keepalive == Keepalive(interval_s=120.0, timeout_s=20.0)
    for name in ("GRPC_KEEPALIVE", "GRPC_KEEPALIVE_TIMEOUT"):
        with pytest.raises(ConfigError, match=name):
            load({name: "500ms"})
