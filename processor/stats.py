"""The processor's counters, shared by ingest, reconciliation and the relay; read by
GetProcessorStats and logged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class ProcessorCounters:
    """Monotonic counters since start (single event loop: plain ints are safe)."""

    frames_received: int = 0
    trades_ingested: int = 0
    duplicates_dropped: int = 0
    frames_quarantined: int = 0
    connections: int = 0
    gaps_recorded: int = 0
    windows_verified: int = 0
    corrections_inserted: int = 0
    corrections_updated: int = 0
    corrections_deleted: int = 0
    events_published: int = 0
    #: Window fetches REST cannot answer completely (each attempt; the window stays unverified).
    windows_rejected: int = 0
    #: Events deleted from the event log by retention (EVENT_LOG_RETENTION).
    events_pruned: int = 0
    #: Whether the NATS relay is publishing (a state, not a counter).
    relay_ready: bool = False

    def snapshot(self) -> dict[str, Any]:
        """A copy of every counter (and ``relay_ready``) by name."""
        return asdict(self)
