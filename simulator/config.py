"""Simulator configuration: a frozen dataclass, read once from `SIM_*` env vars and CLI flags.

Precedence: CLI flag > environment variable > profile (fault rates) > built-in default.
Every env var `SIM_FOO_BAR` has the CLI flag `--foo-bar`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.faults import Malformed, RestFaultRates, WsFaultRates
from simulator.profiles import PROFILE_NAMES, PROFILES, get_profile
from simulator.tape import TapeParams
from simulator.trade import TICKER_PATTERN

DEFAULT_PROFILE = "flaky"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator needs; nothing below the entry point reads the environment."""

    host: str = "127.0.0.1"
    port: int = 8700
    tickers: tuple[str, ...] = ("BTC", "ETH", "SOL")
    seed: int = 1
    profile: str = DEFAULT_PROFILE
    tape: TapeParams = field(default_factory=TapeParams)
    ws_faults: WsFaultRates = PROFILES[DEFAULT_PROFILE].ws
    rest_faults: RestFaultRates = PROFILES[DEFAULT_PROFILE].rest
    #: Epoch ms the tape starts at; None: when the simulator starts.
    start_ms: int | None = None
    rest_lag_ms: int = 2000
    tick_ms: int = 10
    retention_s: int = 0
    max_backlog: int = 200_000
    replay_file: Path | None = None
    truth_file: Path | None = None
    shutdown_timeout_s: float = 1.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.tickers:
            raise ValueError("at least one ticker is required")
        for ticker in self.tickers:
            if not TICKER_PATTERN.match(ticker):
                raise ValueError(f"invalid ticker {ticker!r}")
        if len(set(self.tickers)) != len(self.tickers):
            raise ValueError("duplicate tickers")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within [0, 65535]")
        if self.rest_lag_ms < 0 or self.retention_s < 0 or self.shutdown_timeout_s < 0:
            raise ValueError("rest_lag_ms, retention_s and shutdown_timeout_s must be >= 0")
        if self.start_ms is not None and self.start_ms < 0:
            raise ValueError("start_ms must be >= 0 (epoch milliseconds)")
        if self.tick_ms < 1 or self.max_backlog < 1:
            raise ValueError("tick_ms and max_backlog must be >= 1")

    @classmethod
    def for_profile(cls, name: str, **changes: Any) -> SimConfig:
        """A config using profile `name`'s fault rates, with field overrides."""
        profile = get_profile(name)
        base: dict[str, Any] = {
            "profile": name,
            "ws_faults": profile.ws,
            "rest_faults": profile.rest,
        }
        base.update(changes)
        return cls(**base)


def _tickers(text: str) -> tuple[str, ...]:
    tickers = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not tickers:
        raise ValueError("empty ticker list")
    return tickers


def _malformed_kinds(text: str) -> tuple[tuple[Malformed, float], ...]:
    kinds: list[tuple[Malformed, float]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition("=")
        kinds.append((Malformed(name.strip()), float(weight) if weight else 1.0))
    return tuple(kinds)


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"unknown log level {text!r}")
    return level


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: env var, target (section + field), parser, help."""

    env: str
    section: str
    attr: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        """The CLI flag of this option."""
        return "--" + self.env.removeprefix("SIM_").lower().replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("SIM_HOST", "sim", "host", str, "listen address"),
    Option("SIM_PORT", "sim", "port", int, "listen port (0 = any free port, logged)"),
    Option("SIM_TICKERS", "sim", "tickers", _tickers, "comma-separated tickers"),
    Option("SIM_SEED", "sim", "seed", int, "seed of the tape and of all fault plans"),
    Option(
        "SIM_START_MS",
        "sim",
        "start_ms",
        _optional_int,
        "epoch ms the tape starts at (empty: now); an earlier start makes the trades since then"
        " REST history (the WebSocket sends only new ones): the same seed and start continue"
        " the same market after a restart",
    ),
    Option("SIM_PROFILE", "sim", "profile", str, f"fault profile: {'|'.join(PROFILE_NAMES)}"),
    Option("SIM_RATE", "tape", "rate", float, "mean trades/s per ticker"),
    Option(
        "SIM_CLUSTER_RATE",
        "tape",
        "cluster_rate",
        float,
        "share of events that are same-ms clusters",
    ),
    Option("SIM_CLUSTER_MAX", "tape", "cluster_max", int, "max trades in one same-ms cluster"),
    Option("SIM_BURST_RATE", "tape", "burst_rate", float, "bursts/s per ticker"),
    Option("SIM_BURST_FACTOR", "tape", "burst_factor", float, "rate multiplier during a burst"),
    Option("SIM_BURST_MS", "tape", "burst_ms", int, "burst duration (ms)"),
    Option(
        "SIM_STRING_NUMBER_RATE",
        "tape",
        "string_number_rate",
        float,
        "share of price/quantity sent as JSON strings",
    ),
    Option(
        "SIM_REST_LAG_MS",
        "sim",
        "rest_lag_ms",
        int,
        "a trade is visible on REST this long after it happens",
    ),
    Option("SIM_TICK_MS", "sim", "tick_ms", int, "release period of the tape (ms)"),
    Option(
        "SIM_RETENTION_S", "sim", "retention_s", int, "forget truth older than this (0 = keep all)"
    ),
    Option(
        "SIM_MAX_BACKLOG", "sim", "max_backlog", int, "queued trades before a WS client is dropped"
    ),
    Option(
        "SIM_REPLAY_FILE",
        "sim",
        "replay_file",
        _optional_path,
        "replay this truth export instead of generating",
    ),
    Option(
        "SIM_TRUTH_FILE",
        "sim",
        "truth_file",
        _optional_path,
        "export the truth here on shutdown / POST /truth/export",
    ),
    Option(
        "SIM_SHUTDOWN_TIMEOUT_S",
        "sim",
        "shutdown_timeout_s",
        float,
        "grace period for in-flight requests",
    ),
    Option("SIM_LOG_LEVEL", "sim", "log_level", _level, "DEBUG|INFO|WARNING|ERROR"),
    Option("SIM_WS_DUPLICATE_RATE", "ws", "duplicate", float, "P(trade sent twice)"),
    Option(
        "SIM_WS_DISCONNECT_RATE", "ws", "disconnect", float, "P(connection dropped after a trade)"
    ),
    Option(
        "SIM_WS_MALFORMED_RATE", "ws", "malformed", float, "P(frame replaced by an invalid one)"
    ),
    Option(
        "SIM_WS_MALFORMED_KINDS",
        "ws",
        "malformed_kinds",
        _malformed_kinds,
        "weights of malformed kinds, e.g. not_json=1,missing_field=2",
    ),
    Option(
        "SIM_WS_OUT_OF_ORDER_RATE", "ws", "out_of_order", float, "P(frame delayed by some frames)"
    ),
    Option("SIM_WS_DROP_RATE", "ws", "drop", float, "P(trade never sent)"),
    Option("SIM_WS_WRONG_VALUE_RATE", "ws", "wrong_value", float, "P(wrong price or quantity)"),
    Option("SIM_WS_PHANTOM_RATE", "ws", "phantom", float, "P(an extra trade that never happened)"),
    Option("SIM_WS_MAX_DELAY_FRAMES", "ws", "max_delay_frames", int, "max delay of late frames"),
    Option("SIM_REST_LATENCY_MEDIAN_MS", "rest", "latency_median_ms", float, "median REST latency"),
    Option(
        "SIM_REST_LATENCY_SIGMA", "rest", "latency_sigma", float, "log-normal shape of REST latency"
    ),
    Option("SIM_REST_SLOW_RATE", "rest", "slow_rate", float, "P(very slow REST answer)"),
    Option(
        "SIM_REST_SLOW_MS", "rest", "slow_ms", float, "very slow answers take slow_ms..2*slow_ms"
    ),
    Option("SIM_REST_TIMEOUT_RATE", "rest", "timeout_rate", float, "P(REST hangs for hang_ms)"),
    Option("SIM_REST_HANG_MS", "rest", "hang_ms", float, "how long a hanging request hangs"),
    Option("SIM_REST_ERROR_RATE", "rest", "error_rate", float, "P(REST 5xx)"),
    Option("SIM_REST_THROTTLE_RATE", "rest", "throttle_rate", float, "P(REST 429)"),
    Option("SIM_REST_RETRY_AFTER_S", "rest", "retry_after_s", int, "Retry-After of a 429 (s)"),
)


def build_parser() -> argparse.ArgumentParser:
    """The CLI; every flag defaults to its `SIM_*` env var."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=(
            "Simulator of a faulty crypto trade data provider (WebSocket /stream, REST /trades) "
            "with a ground truth (/truth/*) and counters (/stats). "
            "Each flag overrides the environment variable shown."
        ),
    )
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.env,
            default=None,
            metavar="VALUE",
            help=f"{option.help} [env {option.env}]",
        )
    return parser


def load_config(environ: Mapping[str, str], argv: Sequence[str] | None = None) -> SimConfig:
    """Build the config from env vars and CLI args; ValueError / SystemExit on bad input."""
    args = vars(build_parser().parse_args(argv))
    raw: dict[str, str] = {}
    for option in OPTIONS:
        value = args.get(option.env)
        if value is None:
            value = environ.get(option.env)
        if value is not None:
            raw[option.env] = value
    profile = get_profile(raw.get("SIM_PROFILE", DEFAULT_PROFILE))
    sections: dict[str, dict[str, Any]] = {"sim": {}, "tape": {}, "ws": {}, "rest": {}}
    for option in OPTIONS:
        if option.env in raw:
            try:
                sections[option.section][option.attr] = option.parse(raw[option.env])
            except ValueError as exc:
                raise ValueError(f"{option.env}={raw[option.env]!r}: {exc}") from exc
    sim = sections["sim"]
    sim["profile"] = profile.name
    sim["tape"] = TapeParams(**sections["tape"])
    sim["ws_faults"] = dataclasses.replace(profile.ws, **sections["ws"])
    sim["rest_faults"] = dataclasses.replace(profile.rest, **sections["rest"])
    return SimConfig(**sim)
