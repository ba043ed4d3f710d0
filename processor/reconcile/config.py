"""Settings of reconciliation: a frozen dataclass built once by the entry point."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    """How reconciliation runs (all durations in milliseconds)."""

    #: Length of a reconciliation window; windows are aligned to multiples of it since the epoch.
    window_ms: int = 60_000
    #: A window is verified only once it ended this long ago; must exceed the REST lag.
    settle_ms: int = 10_000
    #: Period of the reconciliation loop.
    interval_ms: int = 5_000
    #: Windows fetched and applied at the same time (all symbols together).
    concurrency: int = 4
    #: Longest wait for the next message of a FetchTrades stream (a window's pages arrive one
    #: after another; the call as a whole has no deadline, so a busy window can finish).
    page_wait_ms: int = 60_000
    #: Most windows planned per symbol and loop turn (bounds catch-up batches).
    max_windows_per_tick: int = 64
    #: Attempts per window in a backfill before it fails with WindowFetchFailed.
    backfill_attempts: int = 3
    #: Most windows one Backfill or GetCoverage request may cover (a week of minutes; a
    #: GetCoverage answer of that many windows stays well under gRPC's 4 MB message limit).
    max_backfill_windows: int = 10_080

    def __post_init__(self) -> None:
        if self.window_ms < 1:
            raise ValueError("window_ms must be at least 1")
        if self.settle_ms < 0 or self.interval_ms < 1 or self.page_wait_ms < 1:
            raise ValueError("settle_ms must be >= 0, interval_ms and page_wait_ms >= 1")
        if self.concurrency < 1 or self.max_windows_per_tick < 1:
            raise ValueError("concurrency and max_windows_per_tick must be at least 1")
        if self.backfill_attempts < 1 or self.max_backfill_windows < 1:
            raise ValueError("backfill_attempts and max_backfill_windows must be at least 1")
