"""Configuration from SIM_* env vars and CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.config import OPTIONS, SimConfig, build_parser, load_config
from simulator.faults import Malformed
from simulator.profiles import PROFILES


def test_defaults() -> None:
    """Without env or flags: 127.0.0.1:8700, BTC/ETH/SOL, flaky profile, 2 s lag."""
    config = load_config({}, [])
    assert (config.host, config.port) == ("127.0.0.1", 8700)
    assert config.tickers == ("BTC", "ETH", "SOL")
    assert config.profile == "flaky"
    assert config.ws_faults == PROFILES["flaky"].ws
    assert config.rest_faults == PROFILES["flaky"].rest
    assert config.rest_lag_ms == 2000
    assert config == SimConfig()


def test_env_then_cli_precedence() -> None:
    """CLI flags override env vars, which override the profile's rates."""
    env = {
        "SIM_PORT": "0",
        "SIM_PROFILE": "hostile",
        "SIM_TICKERS": "BTC, DOGE",
        "SIM_RATE": "50",
        "SIM_WS_DROP_RATE": "0.2",
        "SIM_REST_ERROR_RATE": "0.3",
        "SIM_TRUTH_FILE": "/tmp/truth.jsonl",
    }
    config = load_config(env, ["--rate", "75", "--rest-lag-ms", "250", "--ws-drop-rate", "0"])
    assert config.port == 0
    assert config.profile == "hostile"
    assert config.tickers == ("BTC", "DOGE")
    assert config.tape.rate == 75.0
    assert config.rest_lag_ms == 250
    assert config.ws_faults.drop == 0.0
    assert config.ws_faults.duplicate == PROFILES["hostile"].ws.duplicate
    assert config.rest_faults.error_rate == 0.3
    assert config.truth_file == Path("/tmp/truth.jsonl")


def test_malformed_kinds_option() -> None:
    """SIM_WS_MALFORMED_KINDS parses kind=weight lists."""
    config = load_config({"SIM_WS_MALFORMED_KINDS": "not_json=2,wrong_ts_unit"}, [])
    assert config.ws_faults.malformed_kinds == (
        (Malformed.NOT_JSON, 2.0),
        (Malformed.WRONG_TS_UNIT, 1.0),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIM_PORT": "x"}, "SIM_PORT"),
        ({"SIM_PROFILE": "nasty"}, "unknown profile"),
        ({"SIM_WS_DUPLICATE_RATE": "2"}, "duplicate"),
        ({"SIM_TICKERS": "BTC,B TC"}, "invalid ticker"),
        ({"SIM_TICKERS": ","}, "SIM_TICKERS"),
        ({"SIM_RATE": "0"}, "rate"),
    ],
)
def test_bad_values_rejected(env: dict[str, str], message: str) -> None:
    """Invalid settings raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        load_config(env, [])


def test_every_option_has_a_flag_and_env_name() -> None:
    """Each option is SIM_-prefixed and exposed as a distinct CLI flag in --help."""
    help_text = build_parser().format_help()
    flags = [option.flag for option in OPTIONS]
    assert len(set(flags)) == len(flags)
    for option in OPTIONS:
        assert option.env.startswith("SIM_")
        assert option.flag in help_text
        assert option.env in help_text


def test_for_profile_sets_rates() -> None:
    """SimConfig.for_profile takes the profile's rates and applies overrides."""
    config = SimConfig.for_profile("clean", port=0, rest_lag_ms=10)
    assert config.ws_faults.total == 0
    assert (config.port, config.rest_lag_ms, config.profile) == (0, 10, "clean")
