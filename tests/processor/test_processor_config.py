"""The processor's settings and start: symbols are checked, the storage mode sets the ingest's
refresh queueing, an unreachable database stops the start with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.ports import free_port
from processor.app import ingest_config
from processor.config import SETTINGS as PROCESSOR_SETTINGS
from processor.config import ProcessorConfig
from processor.schema import MATERIALISED_LAG_MS
from tradekit.config import ConfigError, Env


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("BTC,ETH USD", "cannot be a symbol"),
        ("BTC.USD", "cannot be a symbol"),
        ("BTC,*", "cannot be a symbol"),
        ("BTC,>", "cannot be a symbol"),
        ("BTC,ÉTH", "cannot be a symbol"),
        ("BTC-USD", "upper-case letters or digits"),
        ("btc", "upper-case letters or digits"),
        ("A" * 21, "upper-case letters or digits"),
        (" , ", "at least one symbol"),
        ("BTC,ETH,BTC", "twice"),
    ],
)
def test_processor_symbols_must_be_usable_as_subject_tokens(raw: str, message: str) -> None:
    """A symbol ends NATS subjects: one that would break them is refused at start, by name."""
    with pytest.raises(ConfigError, match=message):
        ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"SYMBOLS": raw}))


def test_processor_symbols_accept_the_domain_s_symbols() -> None:
    """Exactly what the rest of the system accepts (the feed, the RPCs): no symbol passes the
    start only to stop the ingest later."""
    config = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"SYMBOLS": "BTC, ETH,1INCH"}))
    assert config.symbols == ("BTC", "ETH", "1INCH")


def test_a_backoff_cap_below_the_first_delay_is_a_configuration_error() -> None:
    """FEED_BACKOFF_MAX under the feed's first reconnect delay is refused by name at start (it
    used to pass the settings and stop the ingest's start with a ValueError); the first delay
    itself is accepted."""
    with pytest.raises(ConfigError, match="FEED_BACKOFF_MAX"):
        ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"FEED_BACKOFF_MAX": "50ms"}))
    config = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"FEED_BACKOFF_MAX": "100ms"}))
    assert ingest_config(config).backoff_max_ms == 100


def test_only_timescale_mode_queues_late_trades_for_a_refresh() -> None:
    """The ingest queues refreshes for late trades in TimescaleDB mode only (plain mode's
    triggers keep the aggregates exact), with the policies' smallest lag."""
    config = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {}))
    assert ingest_config(config).materialised_lag_ms is None
    assert ingest_config(config, timescale=True).materialised_lag_ms == MATERIALISED_LAG_MS


def test_an_unreachable_database_stops_the_start_with_one_line() -> None:
    """python -m processor with nothing listening at DATABASE_URL exits 1 saying so (the URL
    without its password), not with a traceback."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{port}/trading",
        "PROCESSOR_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "processor"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "event=cannot_start" in last
    assert f"cannot reach the database at postgresql://app:***@127.0.0.1:{port}/trading" in last
    assert "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_storage_mode_the_database_cannot_take_stops_the_start_with_one_line(
    database_url: str,
) -> None:
    """STORAGE_MODE=timescale on PostgreSQL without TimescaleDB's continuous aggregates exits 1
    with one line saying what to use instead, not a traceback."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_MODE": "timescale",
        "PROCESSOR_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "processor"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "event=cannot_start" in last
    assert "use STORAGE_MODE=auto or plain" in last
    assert "Traceback" not in done.stderr


def test_event_log_retention_defaults_to_a_week_and_0s_keeps_everything() -> None:
    """EVENT_LOG_RETENTION: 7 days unless set, 0s turns pruning off; a bare number or less
    than an hour is refused by name."""
    assert ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {})).event_log_retention_ms == (
        7 * 86_400_000
    )
    off = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"EVENT_LOG_RETENTION": "0s"}))
    assert off.event_log_retention_ms == 0
    for bad in ("7", "7s", "59m"):  # a bare number; under an hour (a typo for 7d)
        with pytest.raises(ConfigError, match="EVENT_LOG_RETENTION"):
            ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"EVENT_LOG_RETENTION": bad}))
    hour = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"EVENT_LOG_RETENTION": "1h"}))
    assert hour.event_log_retention_ms == 3_600_000
