"""Reading the VWAP service's settings from the environment."""

from __future__ import annotations

import pytest

from tradekit.config import ConfigError
from vwap.config import SETTINGS, VwapConfig


def test_defaults_match_the_declared_settings() -> None:
    """An empty environment gives the documented defaults."""
    config = VwapConfig.from_env({})
    assert config == VwapConfig()
    assert {s.name for s in SETTINGS} >= {
        "VWAP_HOST",
        "VWAP_PORT",
        "DATABASE_URL",
        "PROCESSOR_ADDRESS",
        "VWAP_GRACE",
        "LOG_LEVEL",
    }


def test_values_are_parsed() -> None:
    """Durations and integers are parsed from their text forms."""
    config = VwapConfig.from_env(
        {
            "VWAP_MAX_WINDOW": "7d",
            "VWAP_CACHE_MIN_AGE": "2s",
            "VWAP_PORT": "0",
            "VWAP_GRACE": "250ms",
            "VWAP_MAX_SERIES_POINTS": "50",
        }
    )
    assert (config.max_window_ms, config.cache_min_age_ms, config.port) == (7 * 86_400_000, 2000, 0)
    assert (config.grace_s, config.max_series_points) == (0.25, 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VWAP_PORT", "x"),
        ("VWAP_MAX_WINDOW", "0ms"),
        ("LOG_LEVEL", "loud"),
        ("VWAP_CACHE_MIN_AGE", "10"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    """A bad value is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        VwapConfig.from_env({name: value})
