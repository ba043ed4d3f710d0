"""Processor configuration: every environment variable, read once at the entry point."""

from __future__ import annotations

from dataclasses import dataclass

from processor.ingest.config import FIRST_BACKOFF_MS
from tradekit.config import ConfigError, Env, Setting
from tradekit.domain import DomainError, check_symbol
from tradekit.grpc_server import KEEPALIVE_SETTINGS, Keepalive


def symbols_setting(env: Env) -> tuple[str, ...]:
    """``SYMBOLS``, each one checked at start: at least one, no repeats, each a symbol of the
    domain (1-20 upper-case letters or digits: also a safe last token of NATS subjects)."""
    symbols = env.csv("SYMBOLS")
    if not symbols:
        raise ConfigError("SYMBOLS must name at least one symbol, e.g. BTC,ETH")
    for symbol in symbols:
        try:
            check_symbol(symbol)
        except DomainError as exc:
            raise ConfigError(
                f"SYMBOLS: {symbol!r} cannot be a symbol: {exc} (the provider's tickers, e.g."
                " BTC, ETH)"
            ) from None
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"SYMBOLS names a symbol twice: {','.join(symbols)}")
    return symbols


SETTINGS = (
    Setting("PROCESSOR_HOST", "127.0.0.1", "Interface the gRPC server listens on."),
    Setting("PROCESSOR_PORT", "50052", "gRPC port (0 picks a free port)."),
    Setting(
        "DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/trading",
        "PostgreSQL or TimescaleDB database the processor owns (migrated at start).",
    ),
    Setting("STORAGE_MODE", "auto", "auto, timescale or plain (see Storage modes)."),
    Setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server with JetStream."),
    Setting("NATS_STREAM", "TRADING", "JetStream stream holding trading.> events."),
    Setting("NATS_MAX_AGE", "7d", "How long JetStream keeps events."),
    Setting(
        "EVENT_LOG_RETENTION",
        "7d",
        "How long the event log keeps events once the relay published them (StreamEvents"
        " refuses older positions OUT_OF_RANGE); 0s keeps every event, else at least 1h.",
    ),
    Setting(
        "PROVIDER_WS_URL", "ws://127.0.0.1:8700/stream", "Provider WebSocket feed (all tickers)."
    ),
    Setting("PROXY_ADDRESS", "127.0.0.1:50051", "ProxyService gRPC address."),
    Setting(
        "SYMBOLS",
        "BTC,ETH,SOL",
        "Symbols to ingest and reconcile (1-20 upper-case letters or digits each).",
    ),
    Setting("INGEST_BATCH_SIZE", "10000", "Trades per write transaction at most."),
    Setting("INGEST_FLUSH_INTERVAL", "50ms", "Longest wait before a partial batch is written."),
    Setting("INGEST_QUEUE_SIZE", "20000", "Frames buffered before the feed waits (backpressure)."),
    Setting(
        "INGEST_WRITERS", "2", "Parallel write transactions, each for its share of the symbols."
    ),
    Setting("FEED_STALE_TIMEOUT", "10s", "Reconnect when no valid frame came for this long."),
    Setting("FEED_BACKOFF_MAX", "10s", "Longest wait between reconnection attempts."),
    Setting("RECONCILE_INTERVAL", "5s", "How often reconciliation plans new windows."),
    Setting("RECONCILE_WINDOW", "1m", "Length of one reconciliation window."),
    Setting(
        "SETTLE_DELAY",
        "10s",
        "Reconcile only up to now minus this (longer than the REST lag); now is the provider's"
        " clock as the feed's trade times show it, when behind this machine's.",
    ),
    Setting("RECONCILE_CONCURRENCY", "4", "Windows fetched from the proxy at once."),
    *KEEPALIVE_SETTINGS,
    Setting("PROCESSOR_GRACE", "5s", "Grace period for in-flight RPCs on shutdown."),
    Setting("LOG_LEVEL", "info", "debug, info, warning or error."),
)


#: The shortest event-log retention other than 0 (off): a shorter one would refuse any client
#: a little behind, the VWAP service's follower included, OUT_OF_RANGE over and over.
MIN_EVENT_LOG_RETENTION_MS = 3_600_000


def _retention_ms(env: Env) -> int:
    retention = env.duration_ms("EVENT_LOG_RETENTION")
    if 0 < retention < MIN_EVENT_LOG_RETENTION_MS:
        raise ConfigError(
            f"EVENT_LOG_RETENTION must be 0s (keep every event) or at least 1h, got"
            f" {env.text('EVENT_LOG_RETENTION')!r}"
        )
    return retention


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """Everything the processor needs, with the defaults above."""

    host: str
    port: int
    database_url: str
    storage_mode: str
    nats_url: str
    nats_stream: str
    nats_max_age_ms: int
    event_log_retention_ms: int
    provider_ws_url: str
    proxy_address: str
    symbols: tuple[str, ...]
    ingest_batch_size: int
    ingest_flush_interval_ms: int
    ingest_queue_size: int
    ingest_writers: int
    feed_stale_timeout_ms: int
    feed_backoff_max_ms: int
    reconcile_interval_ms: int
    reconcile_window_ms: int
    settle_delay_ms: int
    reconcile_concurrency: int
    keepalive: Keepalive
    grace_ms: int
    log_level: str

    @classmethod
    def from_env(cls, env: Env) -> ProcessorConfig:
        """Read and validate every setting."""
        return cls(
            host=env.text("PROCESSOR_HOST"),
            port=env.integer("PROCESSOR_PORT", minimum=0),
            database_url=env.text("DATABASE_URL"),
            storage_mode=env.text("STORAGE_MODE"),
            nats_url=env.text("NATS_URL"),
            nats_stream=env.text("NATS_STREAM"),
            nats_max_age_ms=env.duration_ms("NATS_MAX_AGE", minimum=60_000),
            event_log_retention_ms=_retention_ms(env),
            provider_ws_url=env.text("PROVIDER_WS_URL"),
            proxy_address=env.text("PROXY_ADDRESS"),
            symbols=symbols_setting(env),
            ingest_batch_size=env.integer("INGEST_BATCH_SIZE", minimum=1),
            ingest_flush_interval_ms=env.duration_ms("INGEST_FLUSH_INTERVAL", minimum=1),
            ingest_queue_size=env.integer("INGEST_QUEUE_SIZE", minimum=1),
            ingest_writers=env.integer("INGEST_WRITERS", minimum=1),
            feed_stale_timeout_ms=env.duration_ms("FEED_STALE_TIMEOUT", minimum=100),
            feed_backoff_max_ms=env.duration_ms("FEED_BACKOFF_MAX", minimum=FIRST_BACKOFF_MS),
            reconcile_interval_ms=env.duration_ms("RECONCILE_INTERVAL", minimum=10),
            reconcile_window_ms=env.duration_ms("RECONCILE_WINDOW", minimum=1000),
            settle_delay_ms=env.duration_ms("SETTLE_DELAY"),
            reconcile_concurrency=env.integer("RECONCILE_CONCURRENCY", minimum=1),
            keepalive=Keepalive.from_env(env),
            grace_ms=env.duration_ms("PROCESSOR_GRACE"),
            log_level=env.text("LOG_LEVEL"),
        )
