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
            "VWAP_STREAM_SEND_TURNS": "8",
            "VWAP_STREAM_STUCK_AFTER": "1s",
            "VWAP_STREAM_STALLED_AFTER": "30s",
        }
    )
    assert (config.max_window_ms, config.cache_min_age_ms, config.port) == (7 * 86_400_000, 2000, 0)
    assert (config.grace_s, config.max_series_points) == (0.25, 50)
    assert (config.stream_send_turns, config.stream_stuck_after_ms) == (8, 1000)
    assert config.stream_stalled_after_ms == 30_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VWAP_PORT", "x"),
        ("VWAP_MAX_WINDOW", "0ms"),
        ("LOG_LEVEL", "loud"),
        ("VWAP_CACHE_MIN_AGE", "10"),
        ("VWAP_STREAM_SEND_TURNS", "0"),
        ("VWAP_STREAM_STUCK_AFTER", "soon"),
        ("VWAP_STREAM_STALLED_AFTER", "0ms"),
        ("VWAP_STREAM_STALLED_AFTER", "10ms"),  # a typo for 10s: healthy streams would end
        # under ordinary reconciliation's delay: its corrections would end the streams
        ("VWAP_REVISION_HORIZON", "30s"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    """A bad value is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        VwapConfig.from_env({name: value})


def test_batch_settings_are_parsed() -> None:
    """The GetVwap batching settings are read from their text forms."""
    config = VwapConfig.from_env(
        {
            "VWAP_BATCH_LANES": "3",
            "VWAP_BATCH_MAX_WINDOWS": "50",
            "VWAP_BATCH_WAIT": "2ms",
            "VWAP_BATCH_FLUSH_AT": "50",
        }
    )
    assert (config.batch_lanes, config.batch_max_windows) == (3, 50)
    assert (config.batch_wait_ms, config.batch_flush_at) == (2, 50)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VWAP_BATCH_LANES": "0"}, "VWAP_BATCH_LANES must be at least 1"),
        ({"VWAP_BATCH_LANES": "9"}, "VWAP_BATCH_LANES must be at most 8"),
        ({"VWAP_BATCH_MAX_WINDOWS": "0"}, "VWAP_BATCH_MAX_WINDOWS must be at least 1"),
        ({"VWAP_BATCH_WAIT": "8"}, "VWAP_BATCH_WAIT must look like"),
        (
            {"VWAP_BATCH_MAX_WINDOWS": "10", "VWAP_BATCH_FLUSH_AT": "11"},
            r"VWAP_BATCH_FLUSH_AT must be at most VWAP_BATCH_MAX_WINDOWS \(10\)",
        ),
    ],
)
def test_bad_batch_settings_say_what_to_change(env: dict[str, str], message: str) -> None:
    """A bad batching value is a ConfigError naming the variable and the allowed range."""
    with pytest.raises(ConfigError, match=message):
        VwapConfig.from_env(env)


def test_the_stalled_bound_is_not_under_the_stuck_bound() -> None:
    """A stream is not ended as stalled before its write could even lose its send turn."""
    with pytest.raises(ConfigError, match="VWAP_STREAM_STUCK_AFTER"):
        VwapConfig.from_env({"VWAP_STREAM_STUCK_AFTER": "5s", "VWAP_STREAM_STALLED_AFTER": "2s"})
