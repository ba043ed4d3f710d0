"""The README documents what the code does: its configuration tables are the code's."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from proxy.config import SETTINGS as PROXY_SETTINGS
from tradekit.config import Setting, settings_table
from vwap.config import SETTINGS as VWAP_SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize(
    ("name", "settings"),
    [("proxy", PROXY_SETTINGS), ("processor", PROCESSOR_SETTINGS), ("vwap", VWAP_SETTINGS)],
)
def test_readme_configuration_table_matches_the_code(
    name: str, settings: tuple[Setting, ...]
) -> None:
    """Each service's table in the README is exactly what `--settings-table` prints."""
    assert settings_table(settings) in README, f"README table for {name} is out of date"


def test_readme_names_every_rpc() -> None:
    """Every RPC of every service has a grpcurl example in the README."""
    from trading.v1 import processor_pb2, proxy_pb2, vwap_pb2

    for module in (proxy_pb2, processor_pb2, vwap_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"{service.full_name}/{method.name}" in README, method.full_name
