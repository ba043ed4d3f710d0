"""The proxy's settings: declared once, read from the environment once, at the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.latency import LATENCY_WINDOW
from tradekit.config import ConfigError, Env, Setting
from tradekit.grpc_server import KEEPALIVE_SETTINGS, Keepalive

SETTINGS: tuple[Setting, ...] = (
    Setting("PROXY_HOST", "127.0.0.1", "address the gRPC server listens on"),
    Setting("PROXY_PORT", "50051", "gRPC port; 0 picks a free port"),
    Setting("PROVIDER_REST_URL", "http://127.0.0.1:8700", "base URL of the provider's REST API"),
    Setting("PROXY_MAX_WINDOW", "1d", "longest window FetchTrades accepts"),
    Setting("PROXY_MAX_CONCURRENCY", "16", "most HTTP requests in flight to the provider"),
    Setting("PROXY_RATE_LIMIT", "50", "most HTTP requests per second to the provider; 0: no limit"),
    Setting("PROXY_ATTEMPT_TIMEOUT_FLOOR", "1s", "shortest per-attempt timeout (4 x observed p99)"),
    Setting(
        "PROXY_ATTEMPT_TIMEOUT_CEILING",
        "30s",
        "longest per-attempt timeout; also the timeout before enough latencies are observed",
    ),
    Setting(
        "PROXY_LATENCY_MIN_SAMPLES",
        "20",
        "successful requests observed before timeouts adapt and hedging starts",
    ),
    Setting("PROXY_HEDGE_FLOOR", "50ms", "a request is hedged after max(observed p95, this)"),
    Setting(
        "PROXY_HEDGE_BUDGET",
        "10",
        "hedges allowed, in percent of requests over the last 10 s; 0 turns hedging off",
    ),
    Setting("PROXY_BACKOFF_INITIAL", "100ms", "first backoff before a retry (doubles each time)"),
    Setting(
        "PROXY_BACKOFF_MAX", "10s", "longest backoff between retries (Retry-After may exceed it)"
    ),
    *KEEPALIVE_SETTINGS,
    Setting("PROXY_GRACE", "5s", "how long in-flight RPCs may finish on shutdown"),
    Setting("LOG_LEVEL", "info", "debug, info, warning or error"),
)

_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything the proxy reads from the environment (durations in milliseconds)."""

    #: Address the gRPC server listens on.
    host: str
    #: gRPC port; 0 picks a free one.
    port: int
    #: Base URL of the provider's REST API.
    provider_rest_url: str
    #: Longest window FetchTrades accepts.
    max_window_ms: int
    #: Most HTTP requests in flight to the provider.
    max_concurrency: int
    #: Most HTTP requests per second to the provider; 0 means no limit.
    rate_limit_per_s: int
    #: Shortest and longest per-attempt timeout.
    attempt_timeout_floor_ms: int
    attempt_timeout_ceiling_ms: int
    #: Successful requests observed before timeouts adapt and hedging starts.
    latency_min_samples: int
    #: A request is hedged after max(observed p95, this).
    hedge_floor_ms: int
    #: Hedges allowed in percent of requests over a sliding 10 s; 0 turns hedging off.
    hedge_budget_percent: int
    #: Backoff between retries: first and longest.
    backoff_initial_ms: int
    backoff_max_ms: int
    #: The gRPC server's keepalive pings.
    keepalive: Keepalive
    #: Grace period for in-flight RPCs on shutdown.
    grace_ms: int
    #: Log level name.
    log_level: str


def load_config(environ: Mapping[str, str]) -> ProxyConfig:
    """Read and check every setting; ConfigError names the variable and what to change."""
    env = Env(SETTINGS, environ)
    config = ProxyConfig(
        host=env.text("PROXY_HOST"),
        port=env.integer("PROXY_PORT", minimum=0),
        provider_rest_url=env.text("PROVIDER_REST_URL"),
        max_window_ms=env.duration_ms("PROXY_MAX_WINDOW", minimum=1),
        max_concurrency=env.integer("PROXY_MAX_CONCURRENCY", minimum=1),
        rate_limit_per_s=env.integer("PROXY_RATE_LIMIT", minimum=0),
        attempt_timeout_floor_ms=env.duration_ms("PROXY_ATTEMPT_TIMEOUT_FLOOR", minimum=1),
        attempt_timeout_ceiling_ms=env.duration_ms("PROXY_ATTEMPT_TIMEOUT_CEILING", minimum=1),
        latency_min_samples=env.integer("PROXY_LATENCY_MIN_SAMPLES", minimum=1),
        hedge_floor_ms=env.duration_ms("PROXY_HEDGE_FLOOR"),
        hedge_budget_percent=env.integer("PROXY_HEDGE_BUDGET", minimum=0),
        backoff_initial_ms=env.duration_ms("PROXY_BACKOFF_INITIAL", minimum=1),
        backoff_max_ms=env.duration_ms("PROXY_BACKOFF_MAX", minimum=1),
        keepalive=Keepalive.from_env(env),
        grace_ms=env.duration_ms("PROXY_GRACE"),
        log_level=env.text("LOG_LEVEL").strip().lower(),
    )
    if config.attempt_timeout_ceiling_ms < config.attempt_timeout_floor_ms:
        raise ConfigError(
            "PROXY_ATTEMPT_TIMEOUT_CEILING must be at least PROXY_ATTEMPT_TIMEOUT_FLOOR"
        )
    if config.backoff_max_ms < config.backoff_initial_ms:
        raise ConfigError("PROXY_BACKOFF_MAX must be at least PROXY_BACKOFF_INITIAL")
    if config.latency_min_samples > LATENCY_WINDOW:
        raise ConfigError(f"PROXY_LATENCY_MIN_SAMPLES must be at most {LATENCY_WINDOW}")
    if not config.provider_rest_url.startswith(("http://", "https://")):
        url = config.provider_rest_url
        raise ConfigError(f"PROVIDER_REST_URL must start with http:// or https://, got {url!r}")
    if config.log_level not in _LOG_LEVELS:
        raise ConfigError(
            f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {config.log_level!r}"
        )
    return config
