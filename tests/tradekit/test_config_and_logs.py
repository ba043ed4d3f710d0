"""Configuration parsing and structured log lines."""

from __future__ import annotations

import logging

import pytest

from tradekit.config import ConfigError, Env, Setting, parse_duration_ms, settings_table
from tradekit.logs import KeyValueFormatter

SETTINGS = (
    Setting("X_PORT", "50051", "port"),
    Setting("X_WAIT", "5s", "wait"),
    Setting("X_ON", "true", "switch"),
    Setting("X_LIST", "BTC, ETH,,SOL", "list"),
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("5s", 5000), ("5m", 300_000), ("1h", 3_600_000), ("7d", 604_800_000)],
)
def test_durations_parse_to_milliseconds(text: str, ms: int) -> None:
    """Each unit converts exactly to milliseconds."""
    assert parse_duration_ms(text, name="X") == ms


@pytest.mark.parametrize("text", ["5", "5 sec", "-5s", "1.5s", ""])
def test_bad_durations_name_the_variable(text: str) -> None:
    """A malformed duration raises an error naming the variable and the accepted forms."""
    with pytest.raises(ConfigError, match="X_WAIT must look like"):
        Env(SETTINGS, {"X_WAIT": text}).duration_ms("X_WAIT")


def test_env_uses_defaults_and_overrides() -> None:
    """Unset variables take their declared default; set ones override it."""
    env = Env(SETTINGS, {"X_PORT": "0"})
    assert env.integer("X_PORT") == 0
    assert env.duration_ms("X_WAIT") == 5000
    assert env.boolean("X_ON") is True
    assert env.csv("X_LIST") == ("BTC", "ETH", "SOL")


def test_integer_below_minimum_is_rejected() -> None:
    """Values under the minimum are refused with the bound in the message."""
    with pytest.raises(ConfigError, match="at least 1"):
        Env(SETTINGS, {"X_PORT": "0"}).integer("X_PORT", minimum=1)


def test_settings_table_lists_every_variable() -> None:
    """The README table has one row per setting with its default."""
    table = settings_table(SETTINGS)
    assert table.count("\n| `X_") == len(SETTINGS)
    assert "| `X_WAIT` | `5s` | wait |" in table


def test_log_lines_are_key_value_with_quoting() -> None:
    """An event renders as one line of key=value pairs, quoting values with spaces."""
    record = logging.LogRecord("svc", logging.INFO, __file__, 1, "window_verified", None, None)
    record.fields = {"symbol": "BTC", "note": 'a "b" c'}
    line = KeyValueFormatter().format(record)
    assert "\n" not in line
    assert " level=info logger=svc event=window_verified symbol=BTC " in line
    assert line.endswith('note="a \\"b\\" c"')
