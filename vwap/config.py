"""The VWAP service's settings, read once from the environment at the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tradekit.config import ConfigError, Env, Setting
from tradekit.grpc_server import KEEPALIVE_SETTINGS, Keepalive

#: Shortest VWAP_REVISION_HORIZON: reconciliation corrects trades a settle delay and a window
#: (70 s by default) after they happen, and a correction past the horizon ends the streams.
MIN_REVISION_HORIZON_MS = 300_000

#: Most batch lanes: each holds a pool connection (the pool has 20) while its statement runs.
MAX_BATCH_LANES = 8

SETTINGS = (
    Setting("VWAP_HOST", "127.0.0.1", "Interface the gRPC server listens on"),
    Setting("VWAP_PORT", "50053", "gRPC port (0 picks a free port)"),
    Setting(
        "DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/trading",
        "PostgreSQL holding the processor's trade store (read only)",
    ),
    Setting("PROCESSOR_ADDRESS", "127.0.0.1:50052", "ProcessorService address (event stream)"),
    Setting("VWAP_MAX_WINDOW", "31d", "Largest accepted window"),
    Setting("VWAP_MAX_SERIES_POINTS", "10000", "Most points one GetVwapSeries may return"),
    Setting("VWAP_CACHE_SIZE", "100000", "Closed-window answers kept in the LRU cache (0: off)"),
    Setting(
        "VWAP_LIVE_MAX_TRADES",
        "10000000",
        "Most trades StreamVwap's live states may hold in memory (about 400 bytes each); a "
        "stream needing a new one past it is refused RESOURCE_EXHAUSTED",
    ),
    Setting(
        "VWAP_CACHE_MIN_AGE",
        "10s",
        "How long after its end a window counts as closed and may be cached",
    ),
    Setting(
        "VWAP_REVISION_HORIZON",
        "1h",
        "How long emitted closed StreamVwap points stay open to revisions (a correction of an"
        " older one ends its streams UNAVAILABLE: read past points with GetVwapSeries); at"
        " least 5m, well over the processor's SETTLE_DELAY + RECONCILE_WINDOW",
    ),
    Setting(
        "VWAP_CLOSE_ON_CLOCK",
        "true",
        "Close StreamVwap step boundaries on the wall clock, not only when a later trade arrives",
    ),
    Setting(
        "VWAP_CLOSE_GRACE",
        "2s",
        "How long after a step boundary passes it is closed on the clock (late trades revise it)",
    ),
    Setting(
        "VWAP_BATCH_LANES",
        "2",
        "GetVwap statements that may run at once, each answering a batch of cache misses "
        f"(1..{MAX_BATCH_LANES})",
    ),
    Setting("VWAP_BATCH_MAX_WINDOWS", "100", "Most GetVwap windows answered by one statement"),
    Setting(
        "VWAP_BATCH_WAIT",
        "8ms",
        "Longest a GetVwap cache miss waits for others to share its statement",
    ),
    Setting(
        "VWAP_BATCH_FLUSH_AT",
        "16",
        "Queued GetVwap cache misses that start a statement without waiting longer "
        "(at most VWAP_BATCH_MAX_WINDOWS)",
    ),
    Setting(
        "VWAP_STREAM_SEND_TURNS",
        "64",
        "StreamVwap messages being written at once across all streams (the rest wait in line, "
        "their live points conflated)",
    ),
    Setting(
        "VWAP_STREAM_STUCK_AFTER",
        "250ms",
        "How long one StreamVwap write may hold its send turn before a slow client loses it",
    ),
    Setting(
        "VWAP_STREAM_STALLED_AFTER",
        "10s",
        "How long one StreamVwap write may stay unread before its stream is ended "
        "RESOURCE_EXHAUSTED (the client stopped reading); at least 1s",
    ),
    *KEEPALIVE_SETTINGS,
    Setting("VWAP_GRACE", "5s", "Grace period for in-flight RPCs at shutdown"),
    Setting("LOG_LEVEL", "info", "Log level: debug, info, warning or error"),
)


def _stalled_after_ms(env: Env) -> int:
    """VWAP_STREAM_STALLED_AFTER: at least 1 s and at least VWAP_STREAM_STUCK_AFTER (a
    shorter bound would end healthy streams at their first slow write)."""
    stalled = env.duration_ms("VWAP_STREAM_STALLED_AFTER", minimum=1000)
    stuck = env.duration_ms("VWAP_STREAM_STUCK_AFTER")
    if stalled < stuck:
        raise ConfigError(
            f"VWAP_STREAM_STALLED_AFTER must be at least VWAP_STREAM_STUCK_AFTER ({stuck} ms),"
            f" got {stalled} ms"
        )
    return stalled


@dataclass(frozen=True, slots=True)
class VwapConfig:
    """Everything the VWAP service needs to start."""

    #: Interface the gRPC server listens on.
    host: str = "127.0.0.1"
    #: gRPC port; 0 picks a free one.
    port: int = 50053
    #: PostgreSQL connection string of the processor's store.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/trading"
    #: ProcessorService address for StreamEvents.
    processor_address: str = "127.0.0.1:50052"
    #: Largest window in milliseconds.
    max_window_ms: int = 31 * 86_400_000
    #: Most points of one series.
    max_series_points: int = 10_000
    #: Entries of the closed-window cache.
    cache_size: int = 100_000
    #: Most trades the live states may hold when another is created.
    live_max_trades: int = 10_000_000
    #: Age (ms after its end) from which a window is cacheable.
    cache_min_age_ms: int = 10_000
    #: How long emitted closed points accept revisions.
    revision_horizon_ms: int = 3_600_000
    #: Close step boundaries on the wall clock (idle symbols still get closed points).
    close_on_clock: bool = True
    #: Milliseconds after a boundary passes before the clock closes it.
    close_grace_ms: int = 2_000
    #: GetVwap statements (batches of cache misses) that may run at once.
    batch_lanes: int = 2
    #: Most windows in one GetVwap statement.
    batch_max_windows: int = 100
    #: Longest a cache miss waits for others before its statement starts (ms).
    batch_wait_ms: int = 8
    #: Queued misses that start a statement at once.
    batch_flush_at: int = 16
    #: StreamVwap writes in flight across all streams.
    stream_send_turns: int = 64
    #: Milliseconds a StreamVwap write may hold its turn.
    stream_stuck_after_ms: int = 250
    #: Milliseconds a StreamVwap write may stay unread before its stream is ended.
    stream_stalled_after_ms: int = 10_000
    #: The gRPC server's keepalive pings.
    keepalive: Keepalive = field(default_factory=Keepalive)
    #: Shutdown grace period in seconds.
    grace_s: float = 5.0
    #: Log level.
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VwapConfig:
        """Read and validate the settings; ConfigError names the variable to fix."""
        env = Env(SETTINGS, environ)
        level = env.text("LOG_LEVEL").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"LOG_LEVEL must be debug, info, warning or error, got {level!r}")
        lanes = env.integer("VWAP_BATCH_LANES", minimum=1)
        if lanes > MAX_BATCH_LANES:
            raise ConfigError(f"VWAP_BATCH_LANES must be at most {MAX_BATCH_LANES}, got {lanes}")
        max_windows = env.integer("VWAP_BATCH_MAX_WINDOWS", minimum=1)
        flush_at = env.integer("VWAP_BATCH_FLUSH_AT", minimum=1)
        if flush_at > max_windows:
            raise ConfigError(
                f"VWAP_BATCH_FLUSH_AT must be at most VWAP_BATCH_MAX_WINDOWS ({max_windows}), "
                f"got {flush_at}"
            )
        return cls(
            host=env.text("VWAP_HOST"),
            port=env.integer("VWAP_PORT", minimum=0),
            database_url=env.text("DATABASE_URL"),
            processor_address=env.text("PROCESSOR_ADDRESS"),
            max_window_ms=env.duration_ms("VWAP_MAX_WINDOW", minimum=1),
            max_series_points=env.integer("VWAP_MAX_SERIES_POINTS", minimum=1),
            cache_size=env.integer("VWAP_CACHE_SIZE", minimum=0),
            live_max_trades=env.integer("VWAP_LIVE_MAX_TRADES", minimum=1),
            cache_min_age_ms=env.duration_ms("VWAP_CACHE_MIN_AGE"),
            revision_horizon_ms=env.duration_ms(
                "VWAP_REVISION_HORIZON", minimum=MIN_REVISION_HORIZON_MS
            ),
            close_on_clock=env.boolean("VWAP_CLOSE_ON_CLOCK"),
            close_grace_ms=env.duration_ms("VWAP_CLOSE_GRACE"),
            batch_lanes=lanes,
            batch_max_windows=max_windows,
            batch_wait_ms=env.duration_ms("VWAP_BATCH_WAIT"),
            batch_flush_at=flush_at,
            stream_send_turns=env.integer("VWAP_STREAM_SEND_TURNS", minimum=1),
            stream_stuck_after_ms=env.duration_ms("VWAP_STREAM_STUCK_AFTER"),
            stream_stalled_after_ms=_stalled_after_ms(env),
            keepalive=Keepalive.from_env(env),
            grace_s=env.duration_ms("VWAP_GRACE") / 1000,
            log_level=level,
        )
