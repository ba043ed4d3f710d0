"""Settings from the environment and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proxy.config import SETTINGS, load_config
from tradekit.config import ConfigError


def test_defaults() -> None:
    """An empty environment gives the documented defaults."""
    config = load_config({})
    assert (config.host, config.port, config.provider_rest_url) == (
        "127.0.0.1",
        50051,
        "http://127.0.0.1:8700",
    )
    assert config.max_window_ms == 86_400_000
    assert config.grace_ms == 5000


def test_durations_are_parsed() -> None:
    """Durations such as 250ms and 2h become milliseconds."""
    config = load_config({"PROXY_HEDGE_FLOOR": "250ms", "PROXY_MAX_WINDOW": "2h"})
    assert (config.hedge_floor_ms, config.max_window_ms) == (250, 7_200_000)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PROXY_PORT", "-1", "PROXY_PORT"),
        ("PROXY_MAX_WINDOW", "1 day", "PROXY_MAX_WINDOW"),
        ("PROXY_ATTEMPT_TIMEOUT_FLOOR", "1m", "PROXY_ATTEMPT_TIMEOUT_CEILING"),
        ("PROVIDER_REST_URL", "localhost:8700", "PROVIDER_REST_URL"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    """A bad value is a ConfigError naming the variable to change."""
    with pytest.raises(ConfigError, match=message):
        load_config({name: value})


def test_help_lists_every_variable() -> None:
    """`python -m proxy --help` exits 0 and lists every environment variable."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for setting in SETTINGS:
        assert setting.name in result.stdout


def test_bad_environment_exits_2_with_the_variable_named() -> None:
    """A bad setting stops the process before serving, naming the variable."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PROXY_PORT": "http"},
    )
    assert result.returncode == 2
    assert "PROXY_PORT" in result.stderr
