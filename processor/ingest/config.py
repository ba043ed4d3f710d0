"""Settings of the WebSocket ingest (a frozen dataclass; the entry point fills it once)."""

from __future__ import annotations

from dataclasses import dataclass

from processor.ingest.dedup import DEFAULT_CAPACITY
from processor.ingest.validation import MAX_AGE_MS, MAX_SKEW_MS

#: The feed's first reconnect delay (FEED_BACKOFF_MAX may not be shorter).
FIRST_BACKOFF_MS = 100


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """How the feed is kept alive and how its trades are written."""

    #: Trades (and other records) written in one transaction at most.
    batch_size: int = 500
    #: A batch is written at the latest this long after its first record arrived.
    flush_interval_ms: int = 100
    #: Records waiting for the writer; when full the feed waits (backpressure).
    queue_size: int = 10_000
    #: Writers committing in parallel, each for its share of the symbols (and its share of the
    #: queue).
    writers: int = 1
    #: First reconnect delay; doubles per failed attempt (jittered within [d/2, d]).
    backoff_initial_ms: int = FIRST_BACKOFF_MS
    #: Longest reconnect delay.
    backoff_max_ms: int = 10_000
    #: Reconnect when no valid frame arrived for this long.
    stale_timeout_ms: int = 10_000
    #: Trade ids remembered per symbol to drop duplicates before the database.
    dedup_capacity: int = DEFAULT_CAPACITY
    #: Newest stored ids per symbol loaded into that memory at start.
    dedup_seed: int = 20_000
    #: Every gap starts this much before the last valid frame (frames held back out of order).
    gap_margin_ms: int = 2_000
    #: Larger frames make the client drop the connection (bounds memory per queued frame).
    max_frame_bytes: int = 65_536
    #: Opening handshake timeout.
    connect_timeout_ms: int = 10_000
    #: On stop, wait this long for queued records to be written.
    close_timeout_ms: int = 5_000
    #: Longest wait between retries of a batch the database did not accept (connection loss).
    write_retry_max_ms: int = 5_000
    #: Oldest accepted trade timestamp, relative to the local clock.
    max_trade_age_ms: int = MAX_AGE_MS
    #: Newest accepted trade timestamp, ahead of the local clock.
    max_clock_skew_ms: int = MAX_SKEW_MS
    #: TimescaleDB mode: the aggregate policies may have materialised buckets ending this long
    #: before now, so a trade older than that when stored has its range queued for a refresh
    #: (readers sum those buckets from the trades until then). None: plain mode, whose triggers
    #: keep the aggregates exact in the same transaction.
    materialised_lag_ms: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "flush_interval_ms",
            "queue_size",
            "writers",
            "backoff_initial_ms",
            "stale_timeout_ms",
            "dedup_capacity",
            "max_frame_bytes",
            "connect_timeout_ms",
            "write_retry_max_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ingest setting {name} must be >= 1, got {getattr(self, name)}")
        for name in ("dedup_seed", "gap_margin_ms", "close_timeout_ms", "max_clock_skew_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"ingest setting {name} must be >= 0, got {getattr(self, name)}")
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError("backoff_max_ms must be >= backoff_initial_ms")
        if self.materialised_lag_ms is not None and self.materialised_lag_ms < 0:
            raise ValueError("materialised_lag_ms must be >= 0")
        if self.max_trade_age_ms < 1:
            raise ValueError("max_trade_age_ms must be >= 1")
