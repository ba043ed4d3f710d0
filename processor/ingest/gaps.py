"""Feed gap bookkeeping (pure): when the feed was interrupted, from when to when.

A gap opens on an interruption (disconnect, failed connect, staleness, restart) and starts at
the last valid frame before it (minus a margin for frames the provider held back out of order),
or at the interruption itself when no valid frame came yet. It closes when the first valid frame
arrives afterwards. Interruptions while a gap is open widen nothing; their reasons accumulate.
"""

from __future__ import annotations

from processor.ingest.records import Gap

_MAX_REASONS = 5


class GapTracker:
    """The open gap (if any) and the time of the newest valid frame."""

    __slots__ = ("_last_valid_ms", "_margin_ms", "_reasons", "_start_ms")

    def __init__(self, *, margin_ms: int = 0) -> None:
        self._margin_ms = margin_ms
        self._last_valid_ms: int | None = None
        self._start_ms: int | None = None
        self._reasons: list[str] = []

    @property
    def open(self) -> bool:
        """True while a gap waits for the next valid frame."""
        return self._start_ms is not None

    def interrupted(self, now_ms: int, reason: str) -> None:
        """The feed stopped delivering at ``now_ms`` because of ``reason``."""
        if self._start_ms is None:
            anchor = now_ms if self._last_valid_ms is None else self._last_valid_ms
            self._start_ms = anchor - self._margin_ms
            self._reasons = []
        if len(self._reasons) < _MAX_REASONS:
            self._reasons.append(reason)
        elif len(self._reasons) == _MAX_REASONS:
            self._reasons.append("...")

    def resume_from(self, start_ms: int, reason: str) -> None:
        """Open a gap at a known ``start_ms`` (the newest stored trade before a restart)."""
        if self._start_ms is None or start_ms < self._start_ms:
            self._start_ms = start_ms
        self._reasons.insert(0, reason)

    def valid_frame(self, now_ms: int) -> Gap | None:
        """A valid frame arrived at ``now_ms``; returns the gap it closes, if any."""
        self._last_valid_ms = now_ms
        if self._start_ms is None:
            return None
        start = self._start_ms
        self._start_ms = None
        reason = "; ".join(self._reasons)
        self._reasons = []
        return Gap(start, max(now_ms, start + 1), reason)
